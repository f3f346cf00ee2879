"""Release verification from the ledger alone: what the oversight body runs.

:func:`replay` reads ``release.*`` entries in ledger order, checks every
review's DSSE signature with the public key the reviewer was registered with
(or a key the verifier pins itself), recomputes every verdict under the
release policy, and flags any deployment that was not approved when it was
made. It needs no database and trusts nothing but the entries and the keys."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cleanroom.ledger.authority import require_statement, root_verifier
from cleanroom.ledger.entries import decode_entry
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.note import Verifier, parse_verifier
from cleanroom.ledger.store import LedgerStore
from cleanroom.release.errors import AttestationError
from cleanroom.release.policy import ReleasePolicy, Review, Verdict
from cleanroom.release.registry import check_review


@dataclass
class ReleaseView:
    """The release history rebuilt from ledger entries alone (what an outside verifier checks)."""

    policy: ReleasePolicy
    reviewers: dict[str, tuple[str, Verifier]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[str, list[Review]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest per artifact
    problems: list[tuple[int, str]] = field(default_factory=list)

    def verdict(self, digest: str) -> Verdict:
        art = self.artifacts[digest]
        return self.policy.evaluate(
            art["submitted_by"], self.reviews.get(digest, []), art.get("kind", "")
        )

    def live(self, kind: str, at_ms: int | None = None) -> dict[str, Any] | None:
        """The deployment of ``kind`` live at ``at_ms`` (the latest if None)."""
        out = None
        for d in self.deployments:
            if d["kind"] == kind and (at_ms is None or d["at_ms"] <= at_ms):
                out = d
        return out


def ledger_entries(store: LedgerStore) -> list[tuple[int, dict[str, Any]]]:
    """Every sequenced entry of a ledger, decoded, with its index (what
    :func:`replay` and the model registry read)."""
    return [(i, decode_entry(body)) for i, body in store.entries()]


def replay(
    entries: Iterable[tuple[int, dict[str, Any]]],
    policy: ReleasePolicy | None = None,
    *,
    pinned: dict[str, str] | None = None,
    oversight_vkey: str | None = None,
    origin: str = "",
) -> ReleaseView:
    """The release state the entries ``(index, entry)`` describe, with every
    problem found (index, what is wrong). Oversight reviewers count only with a
    statement of the oversight root key — ``oversight_vkey`` if the verifier
    pins it, else the one the ledger's ``oversight.root`` entry names — for the
    log ``origin`` (the statement's own, if not given)."""
    view = ReleaseView(policy or ReleasePolicy())
    pins = {n: parse_verifier(k) for n, k in (pinned or {}).items()}
    root = oversight_vkey
    for index, e in entries:
        kind = e.get("type", "")
        if kind == "oversight.root":
            if root is None:
                root = str(e.get("vkey"))
            elif e.get("vkey") != root:
                view.problems.append((index, "the ledger names another oversight root key"))
            continue
        if not kind.startswith("release."):
            continue
        if kind == "release.reviewer_removed":
            removed = view.reviewers.pop(str(e.get("reviewer")), None)
            if (
                removed
                and removed[0] == "oversight"
                and _root_problem(e, root, origin, "remove", removed[1].vkey)
            ):
                view.reviewers[str(e.get("reviewer"))] = removed
                view.problems.append((index, f"reviewer {e.get('reviewer')!r} removed without "
                                             "the oversight root's statement"))  # fmt: skip
            continue
        if kind == "release.reviewer":
            name, org = e.get("reviewer", ""), e.get("org", "")
            try:
                v = parse_verifier(e.get("vkey", ""))
            except Exception:
                view.problems.append((index, f"reviewer {name!r} registered with a malformed key"))
                continue
            if name in view.reviewers:
                view.problems.append((index, f"reviewer {name!r} registered twice"))
                continue
            if name in pins and pins[name] != v:
                view.problems.append((index, f"reviewer {name!r} registered with a key not pinned"))
                continue
            if org == "parent" or v.name != name:
                view.problems.append((index, f"reviewer {name!r} may not be registered"))
                continue
            if org == "oversight" and (why := _root_problem(e, root, origin, "add", v.vkey)):
                view.problems.append((index, f"oversight reviewer {name!r}: {why}"))
                continue
            view.reviewers[name] = (org, v)
        elif kind == "release.submitted":
            view.artifacts[e["artifact"]] = {**e, "index": index}
        elif kind == "release.review":
            digest, name = e.get("artifact", ""), e.get("reviewer", "")
            if digest not in view.artifacts:
                view.problems.append((index, f"review of unknown artifact {digest}"))
                continue
            if name not in view.reviewers:
                view.problems.append((index, f"review by unregistered reviewer {name!r}"))
                continue
            org, verifier = view.reviewers[name]
            try:
                pred, _ = check_review(e.get("envelope"), verifier, digest)
            except AttestationError as err:
                view.problems.append((index, f"review by {name} does not verify: {err.message}"))
                continue
            if pred["decision"] != e.get("decision") or pred["org"] != org:
                view.problems.append((index, f"review by {name}: entry and signed review differ"))
                continue
            view.reviews.setdefault(digest, []).append(Review(name, org, pred["decision"], index))
        elif kind == "release.evaluated":
            if e.get("artifact") in view.artifacts:
                view.evaluations[e["artifact"]] = {**e.get("metrics", {}), "index": index}
        elif kind == "release.deployed":
            digest = e.get("artifact", "")
            if digest not in view.artifacts:
                view.problems.append((index, f"deployed unknown artifact {digest}"))
            elif not (verdict := view.verdict(digest)).approved:
                view.problems.append(
                    (index, f"deployed {digest} without approval: {verdict.missing}")
                )
            view.deployments.append({**e, "index": index})
    return view


def _root_problem(e: dict[str, Any], root: str | None, origin: str, action: str, vkey: str) -> str:
    """Why a reviewer entry's oversight statement does not hold ("" if it does)."""
    try:
        require_statement(
            e.get("statement"), root_verifier(root) if root else None, origin=origin or None,
            action=action, subject="reviewer", name=str(e.get("reviewer")),
            what=f"reviewer {e.get('reviewer')!r}", **({"vkey": vkey} if action == "add" else {}),
        )  # fmt: skip
    except LedgerError as err:
        return err.message
    return ""
