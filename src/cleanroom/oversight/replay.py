"""The replay audit: sample served-feed commitments from the verified ledger,
have the clean room recompute each feed with the approved ranking
configuration and the recorded inputs, and compare the result with the list
digest committed on the ledger when the feed was served — not with anything
the server says now. A feed the approved algorithm would not have shown is
evidence of manipulation (a hidden boost); each is an alert."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from cleanroom.ledger.errors import LedgerError
from cleanroom.oversight.alerts import Alert

BATCH = 500
TOP = 20  # the head of a feed (what a first screen shows) measured for excess exposure


def list_digest(videos: list[str]) -> str:
    """The digest a feed.served entry commits its ranked list to."""
    return "sha256:" + hashlib.sha256("\n".join(videos).encode()).hexdigest()


@dataclass
class ReplayReport:
    """The replay audit's outcome: feeds sampled, recomputed, unavailable and different from
    the approved algorithm."""

    sampled: int
    replayed: int
    unavailable: int
    mismatched: int
    approved_config: str | None
    examples: list[dict[str, Any]] = field(default_factory=list)
    # over the head (TOP) of every replayed feed: videos the served list had
    # that the approved algorithm would not have put there (and those it lost)
    head_items: int = 0
    excess: Counter[str] = field(default_factory=Counter)
    displaced: Counter[str] = field(default_factory=Counter)
    unverified_lists: int = 0  # mismatched feeds whose served list did not match its digest

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched / self.replayed if self.replayed else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled,
            "replayed": self.replayed,
            "unavailable": self.unavailable,
            "mismatched": self.mismatched,
            "mismatch_rate": round(self.mismatch_rate, 6),
            "approved_config": self.approved_config,
            "examples": self.examples[:20],
            "head": TOP,
            "head_items": self.head_items,
            "undeclared_boost_share": round(self.undeclared_share, 6),
            "excess_videos": [
                {"video": v, "impressions": n} for v, n in self.excess.most_common(20)
            ],
            "displaced_videos": [
                {"video": v, "impressions": n} for v, n in self.displaced.most_common(20)
            ],
            "unverified_lists": self.unverified_lists,
        }

    @property
    def undeclared_share(self) -> float:
        """The share of head impressions the approved algorithm would not have
        given those videos: the estimated reach of undeclared boosts."""
        return sum(self.excess.values()) / self.head_items if self.head_items else 0.0


def replay_audit(
    served: list[list[Any]],
    api_url: str,
    token: str,
    *,
    sample: int = 200,
    seed: int = 0,
    client: httpx.Client | None = None,
    concurrency: int = 2,
) -> tuple[ReplayReport, list[Alert]]:
    """Replay a sample of ``served`` ([index, feed, list_digest, config, model]).

    Batches go out ``concurrency`` at a time (on a multi-worker server the
    worker a batch reaches asks the others for the feeds they keep)."""
    rng = random.Random(seed)
    chosen = served if len(served) <= sample else rng.sample(served, sample)
    http = client or httpx.Client(timeout=120)
    url = api_url.rstrip("/") + "/v1/oversight/feeds/replay"
    by_feed = {row[1]: row for row in chosen}
    report = ReplayReport(len(chosen), 0, 0, 0, None)
    alerts: list[Alert] = []

    def post(batch: list[str]) -> dict[str, Any]:
        try:
            resp = http.post(
                url, json={"feeds": batch}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as e:
            raise LedgerError(f"cannot reach {api_url}: {e}") from None
        if resp.status_code != 200:
            raise LedgerError(f"the replay request answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    ids = list(by_feed)
    answers: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        for doc in pool.map(post, [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]):
            report.approved_config = doc.get("approved_config")
            answers.update((r["feed"], r) for r in doc["feeds"])
    for feed in by_feed:
        found = _compare(report, by_feed[feed], answers[feed])
        if found is not None:
            alerts.append(found)
    return report, alerts


def _compare(report: ReplayReport, row: list[Any], r: dict[str, Any]) -> Alert | None:
    """Account one replayed feed; an alert if it is not what was committed."""
    if not r.get("available"):
        report.unavailable += 1
        return None
    report.replayed += 1
    report.head_items += min(TOP, int(r.get("length", TOP)))
    index, feed, committed, config, model = row
    if r["replayed_digest"] == committed:
        return None
    report.mismatched += 1
    served, replayed = r.get("served"), r.get("replayed")
    if isinstance(served, list) and isinstance(replayed, list):
        # the served list counts only if it is the one the ledger committed
        if list_digest(served) == committed:
            report.excess.update(set(served[:TOP]) - set(replayed[:TOP]))
            report.displaced.update(set(replayed[:TOP]) - set(served[:TOP]))
        else:
            report.unverified_lists += 1
    example = {
        "entry": index,
        "feed": feed,
        "committed_list_digest": committed,
        "replayed_digest": r["replayed_digest"],
        "served_config": config,
        "approved_config": r.get("config_replayed"),
        "model_version": model,
    }
    report.examples.append(example)
    return Alert(
        "replay-mismatch",
        index,
        f"feed {feed} (entry {index}) is not what the approved algorithm shows: "
        f"committed {committed}, approved ranking gives {r['replayed_digest']}",
        {"entries": [index], **example},
    )
