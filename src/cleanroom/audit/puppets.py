"""The sock-puppet audit: scripted accounts with personas drive the real feed
API over HTTP, as the published audits of TikTok's feed did — each puppet
watches to the end (and likes) the videos of its interests and skips the
rest, page after page; its events reach the clean room through the platform's
ingest like any user's. What each saw becomes the audit's metrics:

- the share of the persona's topic over the session (does the feed converge,
  a "rabbit hole"?),
- videos and watch time until the first video of a flagged topic,
- the exploit fraction (share of recommendations matching the persona's
  interests) against two baselines measured in the same run: a random draw
  from the catalogue (the topic's share of it) and the non-personalised feed,
- diversity: topic and creator entropy, the Gini of creators,
- and whether the non-personalised feed ignores history: every puppet, with
  its different history, must get the same non-personalised feed from the same
  pool.

Needs only HTTP: the oversight body runs it from its own machine with the
audit accounts the operator provisioned (``cleanroom audit accounts``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from cleanroom.audit.client import api_call
from cleanroom.audit.metrics import (
    Shown,
    entropy,
    exploit_fraction,
    first_exposure,
    gini,
    topic_share_curve,
)
from cleanroom.audit.topics import ISOLATED, TopicMap
from cleanroom.storage.errors import CleanroomError

AUDIT_SEED = "audit"


class PuppetError(CleanroomError):
    """The audit cannot run: bad accounts file, an API that refuses."""


@dataclass(frozen=True)
class Persona:
    """A sock puppet's character: the topics it watches to the end, and how long it lingers on
    the rest."""

    name: str
    interests: frozenset[str]
    watch_interest_ms: int = 25_000
    watch_other_ms: int = 1_200
    likes: bool = True

    def reacts(self, topic: str) -> tuple[str, int, bool]:
        """(event kind, watch time, liked) for a video of ``topic``."""
        if topic in self.interests:
            return "view", self.watch_interest_ms, self.likes
        return "skip", self.watch_other_ms, False


@dataclass(frozen=True)
class Account:
    """An audit account the operator provisioned: a user and its token."""

    user: str
    token: str


@dataclass(frozen=True)
class Accounts:
    """What the operator hands the oversight body for an audit."""

    platform_token: str  # an ingest service of the platform (events, profiles)
    jurisdiction: str
    puppets: list[Account]

    @classmethod
    def read(cls, path: Path) -> Accounts:
        try:
            doc = json.loads(Path(path).read_text())
            return cls(
                str(doc["platform_token"]),
                str(doc.get("jurisdiction", "US")),
                [Account(str(a["user"]), str(a["token"])) for a in doc["accounts"]],
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PuppetError(f"cannot read the audit accounts file {path}: {e}") from None


def personas(topics: TopicMap, n: int) -> list[Persona]:
    """One persona per topic, for the ``n`` largest topics (isolated videos
    are no topic)."""
    sizes = Counter(t for t in topics.topics.values() if t != ISOLATED)
    return [Persona(f"likes-{t}", frozenset({t})) for t, _ in sizes.most_common(n)]


@dataclass
class Session:
    """What one puppet was shown, page by page, and the non-personalised feed at the end."""

    persona: Persona
    user: str
    shown: list[Shown] = field(default_factory=list)
    popular: list[Shown] = field(default_factory=list)  # the non-personalised feed, at the end
    popular_pool: str = ""
    model_versions: set[str] = field(default_factory=set)
    started_ms: int = 0
    ended_ms: int = 0


class PuppetRun:
    """Sock puppets browsing the clean room's API like users: each watches its topics, skips
    the rest, and the feeds it gets are recorded."""

    def __init__(
        self,
        api_url: str,
        accounts: Accounts,
        topics: TopicMap,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self.api = api_url.rstrip("/")
        self.accounts = accounts
        self.topics = topics
        self.http = client or httpx.Client(timeout=60)

    def _call(self, method: str, path: str, token: str, **kw: Any) -> Any:
        return api_call(self.http, method, self.api, path, token, **kw)

    def _shown(self, doc: dict[str, Any]) -> list[Shown]:
        return [
            Shown(i["video"], self.topics.of(i["video"]), i.get("creator", ""))
            for i in doc["items"]
        ]

    def run(
        self,
        cast: list[Persona],
        *,
        pages: int = 10,
        page_size: int = 10,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Session]:
        if len(cast) > len(self.accounts.puppets):
            raise PuppetError(
                f"{len(cast)} personas but {len(self.accounts.puppets)} audit accounts"
            )
        sessions = []
        total = len(cast) * pages
        for n, (persona, account) in enumerate(zip(cast, self.accounts.puppets, strict=False)):
            sessions.append(self._session(persona, account, pages, page_size))
            if progress is not None:
                progress((n + 1) * pages, total)
        self._popular(sessions, page_size * pages)
        return sessions

    def _session(self, persona: Persona, account: Account, pages: int, size: int) -> Session:
        plat = self.accounts.platform_token
        profile = {
            "jurisdiction": self.accounts.jurisdiction,
            "profile": {"handle": f"@{account.user}"},
        }
        self._call("PUT", f"/v1/users/{account.user}", plat, json=profile)
        s = Session(persona, account.user, started_ms=int(time.time() * 1000))
        for page in range(pages):
            # a new feed each page (the events change it at once), as an app refreshes
            params = {"limit": size, "mode": "personalized",
                      "seed": f"{AUDIT_SEED}-{account.user}-{page}"}  # fmt: skip
            doc = self._call("GET", "/v1/feed", account.token, params=params)
            s.model_versions.add(doc.get("model_version", ""))
            shown = self._shown(doc)
            events = []
            now = int(time.time() * 1000)
            for k, item in enumerate(shown):
                kind, watch, liked = persona.reacts(item.topic)
                s.shown.append(replace(item, watch_ms=watch))
                base = {"user": account.user, "video": item.video, "ts_ms": now + k}
                events.append(
                    {**base, "id": f"{account.user}-{page}-{k}", "kind": kind, "watch_ms": watch}
                )
                if liked:
                    events.append({**base, "id": f"{account.user}-{page}-{k}-like", "kind": "like"})
            if events:
                self._call("POST", "/v1/events", plat, json={"events": events})
        s.ended_ms = int(time.time() * 1000)
        return s

    def _popular(self, sessions: list[Session], limit: int) -> None:
        """Every puppet's non-personalised feed, fetched back to back (and
        again if the pool changed in between)."""
        for _ in range(3):
            docs = [
                self._call("GET", "/v1/feed", a.token,
                           params={"limit": min(limit, 100), "mode": "popular", "seed": AUDIT_SEED})
                for a in self.accounts.puppets[: len(sessions)]
            ]  # fmt: skip
            if len({d.get("pool_version") for d in docs}) == 1:
                break
        for s, d in zip(sessions, docs, strict=True):
            s.popular = self._shown(d)
            s.popular_pool = d.get("pool_version", "")


def summarise(
    sessions: list[Session], topics: TopicMap, *, flagged: set[str], window: int = 10
) -> dict[str, Any]:
    """The audit's figures per persona and over all, with both baselines."""
    sizes = Counter(topics.topics.values())
    catalogue = sum(sizes.values()) or 1
    rows = []
    for s in sessions:
        interest = sorted(s.persona.interests)
        random_share = sum(sizes[t] for t in interest) / catalogue
        first = first_exposure(s.shown, flagged) if flagged else None
        curve = topic_share_curve(s.shown, interest[0], window) if interest and s.shown else []
        rows.append(
            {
                "persona": s.persona.name,
                "user": s.user,
                "interests": interest,
                "videos": len(s.shown),
                "exploit_fraction": exploit_fraction(s.shown, s.persona.interests),
                "baseline_random": random_share,
                "baseline_non_personalised": exploit_fraction(s.popular, s.persona.interests),
                "topic_share_curve": curve,
                "rabbit_hole_delta": (curve[-1] - curve[0]) if len(curve) > 1 else 0.0,
                "first_flagged": (
                    {"videos_before": first[0], "watch_ms_before": first[1]} if first else None
                ),
                "topic_entropy_bits": entropy(x.topic for x in s.shown),
                "creator_entropy_bits": entropy(x.creator for x in s.shown),
                "creator_gini": gini(Counter(x.creator for x in s.shown).values()),
                "model_versions": sorted(s.model_versions),
                "started_ms": s.started_ms,
                "ended_ms": s.ended_ms,
            }
        )
    pools = {s.popular_pool for s in sessions}
    same = len({tuple(x.video for x in s.popular) for s in sessions}) <= 1
    mean = lambda k: sum(r[k] for r in rows) / len(rows) if rows else 0.0  # noqa: E731
    return {
        "personas": rows,
        "flagged_topics": sorted(flagged),
        "window": window,
        "mean_exploit_fraction": mean("exploit_fraction"),
        "mean_baseline_random": mean("baseline_random"),
        "mean_baseline_non_personalised": mean("baseline_non_personalised"),
        "mean_rabbit_hole_delta": mean("rabbit_hole_delta"),
        "non_personalised_ignores_history": {
            "checked": len(pools) == 1 and len(sessions) > 1,
            "identical": same,
            "puppets": len(sessions),
            "pool_versions": sorted(pools),
        },
        "topics_source": topics.source,
    }
