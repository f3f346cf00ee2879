"""Differential privacy for the aggregates anyone but the oversight body gets.

Exact counts with a minimum group size do not protect one person: two queries
around one user's event differ by exactly that event. What a researcher (or
any party but the oversight body) reads of the events is therefore released
under ε-differential privacy, with OpenDP (``opendp``, the library of the
OpenDP project) doing the counting and the noise:

- **contribution bound**: each user adds at most :data:`CONTRIBUTION` events to
  one release (their first ones; the rest are not counted), so adding or
  removing one user changes at most that many records;
- **mechanism**: ``make_count_by_categories`` over a fixed, public set of
  categories (the event kinds, or the catalogue's videos) chained with the
  discrete Laplace mechanism, its scale chosen so that OpenDP's privacy map
  gives ε for a change of :data:`CONTRIBUTION` records; the guarantee holds
  for the whole vector of counts, whatever the data;
- **budget**: each principal may spend :data:`BUDGET` in total over
  :data:`WINDOW_MS` (sequential composition: the ε of their releases add up).
  Every spend is a ``privacy.spent`` ledger entry (principal, ε, query,
  mechanism, scale) before the answer leaves; a release that would exceed
  the budget is refused (429) and spends nothing;
- **post-processing** only after the noise: negative counts become 0 and
  groups whose noisy count is under the minimum group size are withheld.

The guarantee, in words: whatever else a researcher knows, the answers they
get in a year change the probability of any conclusion about one person's
participation by at most a factor e^5 (BUDGET = 5; each release ε ≤ 1).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp
from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, func, select

from cleanroom.errors import CleanroomError
from cleanroom.storage import Database, Migration, migrate

dp.enable_features("contrib")

CONTRIBUTION = 5  # events one user adds to one release, at most
BUDGET = 5.0  # ε a principal may spend per window
WINDOW_MS = 365 * 24 * 3600 * 1000
DEFAULT_EPSILON = 0.5
MAX_EPSILON = 1.0

_meta = MetaData()
spends_t = Table(
    "privacy_spends",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("principal", String(64), nullable=False, index=True),
    Column("epsilon", Float, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)
MIGRATIONS = [
    Migration("privacy", 1, "privacy budget spent per principal", lambda c: _meta.create_all(c))
]


class BudgetExhausted(CleanroomError):
    """The privacy budget of the period is spent: no more aggregates until it renews."""

    status = 429
    title = "Privacy budget exhausted"


class PrivacyInputError(CleanroomError):
    """Parameters of a private release out of range."""

    status = 422
    title = "Invalid privacy parameters"


@dataclass(frozen=True)
class Release:
    """Counts released with noise: the noise scale, epsilon spent, and the groups withheld."""

    counts: dict[str, int]
    epsilon: float
    scale: float
    withheld: int
    spent: float
    budget: float
    ledger_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "privacy": {
                "mechanism": "discrete Laplace on counts by category (OpenDP)",
                "epsilon": self.epsilon,
                "scale": self.scale,
                "contribution_bound": CONTRIBUTION,
                "withheld_groups": self.withheld,
                "budget": self.budget,
                "spent": round(self.spent, 6),
                "remaining": round(max(0.0, self.budget - self.spent), 6),
                "ledger_index": self.ledger_index,
            },
        }


def measurement(categories: list[str], epsilon: float) -> tuple[Any, float]:
    """The OpenDP measurement counting records by ``categories`` with noise
    for ε at a change of :data:`CONTRIBUTION` records, and its scale."""
    count = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T=str)),
        dp.symmetric_distance(),
        categories=categories,
        null_category=False,
    )
    scale = CONTRIBUTION / epsilon
    meas = count >> dp.m.then_laplace(scale=scale)
    if meas.map(d_in=CONTRIBUTION) > epsilon + 1e-9:
        raise PrivacyInputError("the noise does not reach the asked ε (refused, fail closed)")
    return meas, scale


def clamp(records: Iterable[tuple[str, str]]) -> list[str]:
    """The categories of ``(user, category)`` records, keeping at most
    :data:`CONTRIBUTION` per user (their first)."""
    seen: dict[str, int] = {}
    out = []
    for user, category in records:
        n = seen.get(user, 0)
        if n < CONTRIBUTION:
            seen[user] = n + 1
            out.append(category)
    return out


class PrivacyBudget:
    """What each principal has spent, on the ledger first."""

    def __init__(
        self, db: Database, ledger: Any, *, budget: float = BUDGET, window_ms: int = WINDOW_MS
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.budget = budget
        self.window_ms = window_ms
        migrate(db, MIGRATIONS)

    def spent(self, principal: str, now_ms: int | None = None) -> float:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self.db.read_latest() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(spends_t.c.epsilon), 0.0)).where(
                    spends_t.c.principal == principal, spends_t.c.at_ms > now - self.window_ms
                )
            ).scalar_one()
        return float(total)

    def release(
        self,
        principal: str,
        records: Iterable[tuple[str, str]],
        categories: list[str],
        *,
        epsilon: float = DEFAULT_EPSILON,
        min_group: int = 10,
        query: dict[str, Any] | None = None,
    ) -> Release:
        """Noisy counts of ``records`` by ``categories``, ε spent by ``principal``
        (on the ledger before the answer exists)."""
        if not 0 < epsilon <= MAX_EPSILON:
            raise PrivacyInputError(f"epsilon is in (0, {MAX_EPSILON}], got {epsilon}")
        meas, scale = measurement(categories, epsilon)
        # reserve first, then check the total with the reservation in it: two
        # releases racing (in two processes) can both be refused, never both pass
        now = int(time.time() * 1000)
        with self.db.write() as conn:
            rid = conn.execute(
                spends_t.insert().values(
                    principal=principal, epsilon=epsilon, at_ms=now, ledger_index=-1
                )
            ).inserted_primary_key[0]
        spent = self.spent(principal, now)
        if spent > self.budget + 1e-9:
            with self.db.write() as conn:
                conn.execute(spends_t.delete().where(spends_t.c.id == rid))
            raise BudgetExhausted(
                f"{principal} has spent ε {spent - epsilon:g} of {self.budget:g} in the window; "
                f"this release needs {epsilon:g}",
                hint="ask for a smaller epsilon, or wait for the window to move on",
            )
        try:
            index = self.ledger.append(
                {
                    "type": "privacy.spent",
                    "v": 1,
                    "principal": principal,
                    "epsilon": epsilon,
                    "mechanism": "opendp:count_by_categories+laplace",
                    "scale": scale,
                    "contribution_bound": CONTRIBUTION,
                    "query": query or {},
                    "spent": spent,
                    "budget": self.budget,
                    "time_ms": now,
                }
            )
        except BaseException:
            with self.db.write() as conn:  # not on the record: not spent, no answer
                conn.execute(spends_t.delete().where(spends_t.c.id == rid))
            raise
        with self.db.write() as conn:
            conn.execute(spends_t.update().where(spends_t.c.id == rid).values(ledger_index=index))
        noisy = meas(clamp(records))
        counts = {c: max(0, int(n)) for c, n in zip(categories, noisy, strict=True)}
        kept = {c: n for c, n in counts.items() if n >= min_group}
        return Release(kept, epsilon, scale, len(counts) - len(kept), spent, self.budget, index)
