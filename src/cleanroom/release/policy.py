"""The release policy: when is an artifact approved?

- ``k`` approvals from distinct eligible reviewers (reviewers of the operator
  and of the oversight body, each with their own key);
- at least ``operator_required`` of them from the operator (the party that
  answers for what runs);
- for the kinds that decide what runs and who may read what (models, policies
  and source), at least one from the oversight body — the operator never
  approves those alone. Oversight reviewers exist only by a statement of the
  oversight body's root key (``cleanroom.ledger.authority``);
- approvals from the foreign parent never count, whoever holds the key;
- whoever submitted an artifact cannot approve it;
- a rejection by an eligible reviewer blocks the artifact (a veto), until a
  new artifact is submitted.

Reviews given here have already had their signatures verified: this module
only counts, and says why each review did or did not count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REVIEWER_ORGS = ("operator", "oversight")
# Artifact kinds that need the oversight body's approval, and how many.
OVERSIGHT_REQUIRED = {"model": 1, "policy": 1, "source": 1}


@dataclass(frozen=True)
class Review:
    """A reviewer's decision on an artifact, as recorded."""

    reviewer: str  # principal name
    org: str
    decision: str  # approve | reject
    ledger_index: int | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether an artifact is approved: the approvals that count, vetoes and what was ignored
    and why."""

    approved: bool
    counted: tuple[str, ...]  # reviewers whose approval counts
    vetoed_by: tuple[str, ...]
    ignored: tuple[tuple[str, str], ...]  # (reviewer, why it does not count)
    missing: str = ""  # what is still needed, in words

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "counted": list(self.counted),
            "vetoed_by": list(self.vetoed_by),
            "ignored": [{"reviewer": r, "why": w} for r, w in self.ignored],
            "missing": self.missing,
        }


@dataclass(frozen=True)
class ReleasePolicy:
    """How many approvals a release needs, from which organisations."""

    k: int = 2
    operator_required: int = 1
    reviewer_orgs: tuple[str, ...] = field(default=REVIEWER_ORGS)
    oversight_required: dict[str, int] = field(default_factory=lambda: dict(OVERSIGHT_REQUIRED))

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 <= self.operator_required <= self.k:
            raise ValueError("a release policy needs k >= 1 and 0 <= operator_required <= k")
        if any(n + self.operator_required > self.k for n in self.oversight_required.values()):
            raise ValueError("operator and oversight approvals required exceed k")
        if "parent" in self.reviewer_orgs:
            raise ValueError("reviewers of the foreign parent can never approve a release")

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "operator_required": self.operator_required,
            "reviewer_orgs": list(self.reviewer_orgs),
            "oversight_required": dict(self.oversight_required),
        }

    def evaluate(self, submitted_by: str, reviews: list[Review], kind: str = "") -> Verdict:
        counted: list[Review] = []
        vetoes: list[str] = []
        ignored: list[tuple[str, str]] = []
        seen: set[str] = set()
        for r in reviews:
            if r.org == "parent":
                ignored.append((r.reviewer, "reviews from the foreign parent never count"))
            elif r.org not in self.reviewer_orgs:
                ignored.append((r.reviewer, f"reviewers of {r.org!r} may not review releases"))
            elif r.reviewer == submitted_by:
                ignored.append((r.reviewer, "whoever submitted an artifact cannot review it"))
            elif r.reviewer in seen:
                ignored.append((r.reviewer, "only a reviewer's first review counts"))
            elif r.decision == "reject":
                seen.add(r.reviewer)
                vetoes.append(r.reviewer)
            else:
                seen.add(r.reviewer)
                counted.append(r)
        operators = sum(1 for r in counted if r.org == "operator")
        need = []
        if len(counted) < self.k:
            need.append(f"{self.k - len(counted)} more approval(s)")
        if operators < self.operator_required:
            need.append(f"{self.operator_required - operators} more from the operator")
        overseers = sum(1 for r in counted if r.org == "oversight")
        if overseers < self.oversight_required.get(kind, 0):
            need.append(f"{self.oversight_required[kind] - overseers} more from the oversight body")
        if vetoes:
            need.append("no rejection (rejected by " + ", ".join(vetoes) + ")")
        return Verdict(
            not need,
            tuple(r.reviewer for r in counted),
            tuple(vetoes),
            tuple(ignored),
            "; ".join(need),
        )
