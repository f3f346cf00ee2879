"""Ownership graphs and the rules that extend a listing to what the listed own.

- **OFAC's 50 percent rule** (rule ``ofac-50``; OFAC FAQs 398-401): an entity
  owned 50 percent or more, directly or indirectly, individually or in the
  aggregate, by one or more blocked persons is itself blocked. Stakes of all
  blocked owners are summed; an owner counts once it is blocked itself (listed,
  or blocked by this rule), so blocking propagates through chains of blocked
  entities and is computed to a fixed point. A stake held through an entity
  that is *not* blocked does not count (FAQ 401's "indirectly"), and control
  without ownership never does (FAQ 398). Stakes of persons blocked under
  different programs are aggregated.
- **NS-CMIC and other non-blocking listings** (rule ``none``): the listed entity
  only; nothing it owns inherits the listing.
- **The BIS Affiliates Rule** (rule ``bis-affiliates``): an entity 50 percent or
  more owned, directly or indirectly, individually or in the aggregate, by
  Entity List or MEU-listed parties is subject to the same restrictions — from
  a configurable effective date (the rule's effect has been suspended and
  resumed by the agency; the date is the operator's to set). Before that date
  the rule adds nothing.

A result says through which path it came: the owners whose stakes made the
entity covered, each with its own reason, down to the listed parties.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cleanroom.screen.errors import ListFormatError

THRESHOLD = 50.0
MAX_EDGES = 1_000_000


@dataclass(frozen=True)
class Stake:
    """One ownership stake: who owns how much of whom."""

    owner: str
    owned: str
    percent: float


@dataclass(frozen=True)
class Listing:
    """Why a node is a seed: the list, party and rule of its listing."""

    list_id: str
    party_id: str
    rule: str
    name: str


@dataclass
class Covered:
    """A node the rule covers, and why: listed itself, or owned by covered nodes."""

    node: str
    rule: str
    listing: Listing | None = None
    owners: list[tuple[str, float]] = field(default_factory=list)
    total: float = 0.0

    def path(
        self, covered: dict[str, Covered], names: dict[str, str], depth: int = 0
    ) -> dict[str, Any]:
        """The tree of owners down to the listed parties (``names`` maps node
        keys to the names as given)."""
        out: dict[str, Any] = {"entity": names.get(self.node, self.node), "rule": self.rule}
        if self.listing:
            out["listed"] = {
                "list": self.listing.list_id,
                "party_id": self.listing.party_id,
                "listed_name": self.listing.name,
            }
            return out
        out["owned_percent"] = round(self.total, 4)
        out["through"] = [
            {"percent": pct, **covered[o].path(covered, names, depth + 1)}
            for o, pct in self.owners
            if depth < 32
        ]
        return out

    def chain(self, covered: dict[str, Covered], names: dict[str, str]) -> str:
        """One line: "B <- 50% A <- 50% X (ofac-sdn sdn:123)"."""
        label = names.get(self.node, self.node)
        if self.listing:
            return f"{label} ({self.listing.list_id} {self.listing.party_id})"
        parts = [f"{pct:g}% {covered[o].chain(covered, names)}" for o, pct in self.owners]
        joined = " + ".join(parts)
        return f"{label} <- " + (f"[{joined}]" if len(parts) > 1 else joined)


class OwnershipGraph:
    """Who owns what share of whom. Nodes are names as given (compared after
    whitespace and case folding)."""

    def __init__(self, stakes: Iterable[Stake] = ()) -> None:
        self._owners: dict[str, dict[str, float]] = defaultdict(dict)
        self.names: dict[str, str] = {}
        for s in stakes:
            self.add(s)

    @staticmethod
    def key(name: str) -> str:
        return " ".join(name.split()).casefold()

    def add(self, stake: Stake) -> None:
        if not (0 < stake.percent <= 100):
            raise ListFormatError(
                f"{stake.owner} -> {stake.owned}: a stake is more than 0 and at most 100 percent"
            )
        o, t = self.key(stake.owner), self.key(stake.owned)
        if not o or not t:
            raise ListFormatError("a stake names its owner and what it owns")
        if o == t:
            raise ListFormatError(f"{stake.owner} cannot own itself")
        self.names.setdefault(o, " ".join(stake.owner.split()))
        self.names.setdefault(t, " ".join(stake.owned.split()))
        self._owners[t][o] = self._owners[t].get(o, 0.0) + stake.percent
        if sum(self._owners[t].values()) > 100.0001:
            raise ListFormatError(f"the stakes in {stake.owned} add up to more than 100 percent")

    def owners(self, node: str) -> dict[str, float]:
        return dict(self._owners.get(self.key(node), {}))

    @property
    def nodes(self) -> list[str]:
        return sorted(self.names)

    def __len__(self) -> int:
        return sum(len(v) for v in self._owners.values())

    def covered(
        self,
        listings: dict[str, list[Listing]],
        *,
        as_of: dt.date | None = None,
        affiliates_from: dt.date | None = None,
    ) -> dict[str, list[Covered]]:
        """Every node a rule covers, keyed by node, one ``Covered`` per rule.

        ``listings`` maps node keys to their listings (from screening the node
        names against the lists). ``as_of`` is the day the rules are applied
        (today by default); the BIS Affiliates Rule applies from
        ``affiliates_from`` (never when None)."""
        day = as_of or dt.date.today()
        out: dict[str, list[Covered]] = defaultdict(list)
        for rule in ("ofac-50", "bis-affiliates", "none"):
            seeds = {
                n: next(x for x in ls if x.rule == rule)
                for n, ls in listings.items()
                if any(x.rule == rule for x in ls)
            }
            inherit = rule == "ofac-50" or (
                rule == "bis-affiliates" and affiliates_from is not None and day >= affiliates_from
            )
            result = self._fixed_point(seeds, rule, inherit)
            for node, c in result.items():
                out[node].append(c)
        return dict(out)

    def _fixed_point(
        self, seeds: dict[str, Listing], rule: str, inherit: bool
    ) -> dict[str, Covered]:
        covered = {n: Covered(n, rule, listing=x) for n, x in seeds.items()}
        if not inherit:
            return covered
        changed = True
        while changed:
            changed = False
            for node, owners in self._owners.items():
                if node in covered:
                    continue
                stakes = sorted(
                    ((o, pct) for o, pct in owners.items() if o in covered), key=lambda x: -x[1]
                )
                total = sum(p for _, p in stakes)
                if total >= THRESHOLD - 1e-9:
                    covered[node] = Covered(node, rule, owners=stakes, total=total)
                    changed = True
        return covered


def parse_stakes(text: str, name: str = "ownership") -> OwnershipGraph:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    if not reader.fieldnames or not {"owner", "owned", "percent"} <= set(reader.fieldnames):
        raise ListFormatError(f"{name}: an ownership file has columns owner, owned, percent")
    graph = OwnershipGraph()
    for n, row in enumerate(reader, 2):
        if n > MAX_EDGES:
            raise ListFormatError(f"{name}: more than {MAX_EDGES} stakes")
        try:
            pct = float((row["percent"] or "").strip().rstrip("%"))
        except ValueError as e:
            raise ListFormatError(
                f"{name} line {n}: percent {row['percent']!r} is not a number"
            ) from e
        try:
            graph.add(Stake(row["owner"] or "", row["owned"] or "", pct))
        except ListFormatError as e:
            raise ListFormatError(f"{name} line {n}: {e.message}") from e
    return graph
