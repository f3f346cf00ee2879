"""What reviewers read before they approve a release: the change from the
live release, the policy set's invariants and changed decisions, and a model
configuration's metrics on the fixed evaluation set."""

from __future__ import annotations

import difflib
import functools
import json
from typing import Any

from cleanroom.foryou import RankingConfig
from cleanroom.gate.gate import decision_changes
from cleanroom.gate.policy import load_files
from cleanroom.release import (
    ReleaseError,
)
from cleanroom.room import CleanRoom


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two JSON documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _changed(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {json.dumps(old)} -> {json.dumps(new)}"]


def diff_lines(room: CleanRoom, digest: str, against: str | None = None) -> list[str]:
    """What reviewers read: the change from the live release of the same kind
    (or ``against``): changed configuration values, or a unified diff of files."""
    reg = room.releases
    art = reg.get(digest)
    live = reg.live(art.kind)
    base_digest = against or (live.artifact if live else None)
    base = reg.get(base_digest) if base_digest else None
    head = f"{art.kind} {art.name!r} {digest} by {art.submitted_by} ({art.org})"
    out = [head, f"against: {base.name!r} {base.digest}" if base else "against: nothing"]
    old = base.manifest if base else {}
    if art.kind == "model":
        changes = _changed(old.get("config", {}), art.manifest["config"])
        out += [f"  {c}" for c in changes] or ["  no change in the configuration"]
    else:
        before, after = old.get("files", {}), art.manifest["files"]
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            if a == b:
                continue
            if art.kind == "source":
                what = "added" if a is None else "removed" if b is None else "changed"
                out.append(f"  {what}: {name}")
                continue
            out += list(
                difflib.unified_diff(
                    (a or "").splitlines(),
                    (b or "").splitlines(),
                    f"a/{name}",
                    f"b/{name}",
                    lineterm="",
                )
            )
    if art.kind == "policy" and base is not None:
        out += policy_decision_lines(base.manifest["files"], art.manifest["files"])
    if art.kind == "policy":
        out += policy_invariant_lines(art.manifest["files"])
    v = reg.verdict(digest)
    out.append("approved" if v.approved else f"not approved: {v.missing}")
    return out


@functools.lru_cache(maxsize=8)
def _invariants(files: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    from cleanroom.gate.analysis import analyse, summary

    return tuple(summary(analyse(load_files(dict(files)))))


def policy_invariant_lines(files: dict[str, str]) -> list[str]:
    """The policy set's invariants over every request the gate can make
    (``cleanroom.gate.analysis``): what a reviewer must see before approving."""
    return ["invariants (exhaustive over the schema's domains):"] + [
        f"  {line}" for line in _invariants(tuple(sorted(files.items())))
    ]


def policy_decision_lines(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Which decisions of the fixed request set change (grouped over purposes)."""
    return list(_decision_lines(tuple(sorted(before.items())), tuple(sorted(after.items()))))


@functools.lru_cache(maxsize=8)
def _decision_lines(
    before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...]
) -> tuple[str, ...]:
    # the same files decide the same: nothing can change (and nothing to evaluate)
    changes = [] if before == after else decision_changes(load_files(dict(before)),
                                                          load_files(dict(after)))  # fmt: skip
    groups: dict[tuple[str, ...], list[str]] = {}
    for c in changes:
        key = (c["before"], c["after"], c["principal"], c["action"], c["resource"])
        groups.setdefault(key, []).append(c["purpose"] or "(none)")
    out = [f"decisions that change on the fixed request set: {len(changes)}"]
    for (b, a, who, action, resource), purposes in sorted(groups.items()):
        out.append(f"  {b} -> {a}: {who} {action} {resource} (purposes: {', '.join(purposes)})")
    return tuple(out)


EVAL_DATASET = "kuairec-small"


def evaluate_model_release(
    room: CleanRoom, digest: str, *, split: str = "valid", by: str
) -> dict[str, Any]:
    """A model configuration's metrics on the fixed evaluation set (the bundled
    kuairec-small, SIGformer protocol, ``split``), recorded on the ledger."""
    from cleanroom.foryou.evaluate import bundled, evaluate_engine

    art = room.releases.get(digest)
    if art.kind != "model":
        raise ReleaseError("only a model configuration can be evaluated")
    cfg = RankingConfig.parse(art.manifest["config"])
    scores, info = evaluate_engine(bundled(EVAL_DATASET), cfg, split)
    metrics = {
        "dataset": EVAL_DATASET,
        "split": split,
        **{k: round(float(v), 5) for k, v in scores.items()},
        "train_seconds": info["train_seconds"],
    }
    room.releases.record_evaluation(digest, metrics, by=by)
    return metrics
