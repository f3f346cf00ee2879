"""One screening: a name against the loaded lists and the ownership graph,
with the false positives already dismissed for that party and list version.

The decision at the threshold is ``match`` (a listed party, or an entity a
listing reaches through ownership) or ``clear``. A dismissed hit is shown but
does not count, for the list version it was dismissed under only: a new
version of the list brings the hit back for review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cleanroom.screen.errors import ScreeningInputError
from cleanroom.screen.index import Hit, ListIndex, check_name, check_schema
from cleanroom.screen.lists import ListSnapshot
from cleanroom.screen.normalize import normalize
from cleanroom.screen.ownership import Covered, Listing, OwnershipGraph

CANDIDATES_SHOWN = 5  # candidates an answer shows unless the request asks for another number
MAX_CANDIDATES = 50


def check_options(threshold: Any, limit: Any) -> None:
    """A request's own threshold (0 < t <= 1) and candidate limit (1..50)."""
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold <= 1
    ):
        raise ScreeningInputError(f"threshold {threshold!r} is not a number in (0, 1]")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CANDIDATES
    ):
        raise ScreeningInputError(
            f"limit {limit!r} is not a whole number from 1 to {MAX_CANDIDATES}"
        )


def query_key(name: str) -> str:
    """What identifies a screened party across screenings (for dismissals)."""
    return normalize(name, "Company").key or " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Dismissal:
    """A match dismissed as a false positive for one list version."""

    query_key: str
    list_id: str
    party_id: str
    list_version: str


@dataclass
class Screening:
    """A name screened: the matches, the list versions and the threshold."""

    query: str
    schema: str
    threshold: float
    list_versions: dict[str, str]
    hits: list[Hit]
    dismissed: list[Hit]
    ownership: list[dict[str, Any]] = field(default_factory=list)
    ownership_version: str | None = None
    matcher: str = ""  # the matcher's version (logic and weights)

    @property
    def decision(self) -> str:
        if any(h.score >= self.threshold for h in self.hits) or self.ownership:
            return "match"
        return "clear"

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def reasons(self) -> list[str]:
        out = [
            f"{h.entry.list_id} {h.entry.party.id} {h.entry.party.name!r} (score {h.score:.2f}): "
            + h.comparison.reason()
            for h in self.hits
            if h.score >= self.threshold
        ]
        out += [f"{o['rule']}: {o['chain']}" for o in self.ownership]
        return out

    def _head(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "schema": self.schema,
            "decision": self.decision,
            "threshold": self.threshold,
            "matcher": self.matcher,
            "list_versions": self.list_versions,
        }

    def as_json(self, *, explain: bool = True) -> dict[str, Any]:
        return {
            **self._head(),
            "candidates": [h.as_json(explain=explain) for h in self.hits],
            "dismissed": [h.as_json(explain=False) for h in self.dismissed],
            "ownership": self.ownership,
            "ownership_version": self.ownership_version,
            "reasons": self.reasons(),
        }

    def ledger_body(self) -> dict[str, Any]:
        """What the ledger keeps of it: query, versions, candidates and scores,
        decision (explanations stay out; the scores and versions reproduce them)."""
        return {
            **self._head(),
            "candidates": [
                {
                    "list": h.entry.list_id,
                    "party_id": h.entry.party.id,
                    "matched_name": h.entry.text,
                    "score": round(h.score, 4),
                }
                for h in self.hits
            ],
            "dismissed": [
                {"list": h.entry.list_id, "party_id": h.entry.party.id} for h in self.dismissed
            ],
            "ownership": [{"rule": o["rule"], "chain": o["chain"]} for o in self.ownership],
            "ownership_version": self.ownership_version,
        }


class Screener:
    """The lists, the ownership graph and the dismissals of one clean room."""

    def __init__(
        self,
        snapshots: Iterable[ListSnapshot] | ListIndex,
        *,
        ownership: OwnershipGraph | None = None,
        ownership_version: str | None = None,
        dismissals: Iterable[Dismissal] = (),
        affiliates_from: dt.date | None = None,
    ) -> None:
        self.index = snapshots if isinstance(snapshots, ListIndex) else ListIndex(snapshots)
        self.ownership = ownership or OwnershipGraph()
        self.ownership_version = ownership_version
        self.dismissals = set(dismissals)
        self.affiliates_from = affiliates_from
        self._covered: dict[str, list[Covered]] | None = None
        self._by_rule: dict[str, dict[str, Covered]] = {}
        self._covered_day: dt.date | None = None
        # the graph's names, normalised once (screenings compare against them)
        self._node_names = {k: normalize(n, "Company") for k, n in self.ownership.names.items()}

    @property
    def threshold(self) -> float:
        return self.index.matcher.threshold

    @property
    def list_versions(self) -> dict[str, str]:
        return self.index.versions

    def set_dismissals(self, dismissals: Iterable[Dismissal]) -> None:
        """The false positives dismissed so far (each for its list version)."""
        self.dismissals = set(dismissals)

    def covered(self, as_of: dt.date | None = None) -> dict[str, list[Covered]]:
        """Every node of the ownership graph a listing reaches (cached per day)."""
        day = as_of or dt.date.today()
        if self._covered is None or self._covered_day != day:
            listings: dict[str, list[Listing]] = {}
            for node in self.ownership.nodes:
                for h in self.index.screen(self.ownership.names[node], "any", limit=3):
                    if h.score >= self.threshold:
                        p = h.entry.party
                        listings.setdefault(node, []).append(
                            Listing(h.entry.list_id, p.id, p.rule, p.name)
                        )
            self._covered = self.ownership.covered(
                listings, as_of=day, affiliates_from=self.affiliates_from
            )
            self._by_rule = {}
            for node, results in self._covered.items():
                for c in results:
                    self._by_rule.setdefault(c.rule, {})[node] = c
            self._covered_day = day
        return self._covered

    def screen(
        self,
        name: str,
        schema: str = "any",
        *,
        as_of: dt.date | None = None,
        threshold: float | None = None,
        limit: int | None = None,
    ) -> Screening:
        """Screen one name: its best candidates (``limit``, 5 by default) and
        the decision at ``threshold`` (the matcher's by default)."""
        name = check_name(name)
        schema = check_schema(schema)
        check_options(threshold, limit)
        shown = limit or CANDIDATES_SHOWN
        key = query_key(name)
        hits, dismissed = [], []
        for h in self.index.screen(name, schema, limit=shown + 5):
            d = Dismissal(key, h.entry.list_id, h.entry.party.id, h.entry.version)
            (dismissed if d in self.dismissals else hits).append(h)
        ownership = self._ownership(name, as_of) if len(self.ownership) else []
        return Screening(
            name,
            schema,
            float(threshold) if threshold is not None else self.threshold,
            self.list_versions,
            hits[:shown],
            dismissed,
            ownership,
            self.ownership_version,
            self.index.matcher.version,
        )

    def _ownership(self, name: str, as_of: dt.date | None) -> list[dict[str, Any]]:
        """Rules that reach the screened party through what owns it (not its
        own listing: that is a name hit)."""
        covered = self.covered(as_of)
        matcher = self.index.matcher
        q = normalize(name, "Company")
        own = self.ownership.key(name)
        exact = own in self.ownership.names  # the party is in the graph under this name
        out = []
        for node, results in covered.items():
            if exact and node != own:
                continue
            for c in results:
                if c.listing is not None:
                    continue
                if (
                    node != own
                    and matcher.compare(q, self._node_names[node]).score < self.threshold
                ):
                    continue
                by_rule = self._by_rule[c.rule]
                out.append(
                    {
                        "entity": self.ownership.names[node],
                        "rule": c.rule,
                        "owned_percent": round(c.total, 4),
                        "chain": c.chain(by_rule, self.ownership.names),
                        "path": c.path(by_rule, self.ownership.names),
                    }
                )
        return out
