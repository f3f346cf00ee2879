"""The model registry, read from the ledger alone: every model version the
clean room made live (``model.trained``: trained with its lineage and the
builder's provenance; ``model.updated``: the same model after deletions),
when, from which approved configuration, and which model served a feed.

Answers "which model was live at time T" and "which model served feed F"
for the oversight body without any access to the clean room's database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cleanroom.ledger.note import Verifier
from cleanroom.release import dsse
from cleanroom.release.errors import AttestationError
from cleanroom.release.intoto import PROVENANCE_TYPE, parse_statement, subject_digests
from cleanroom.release.policy import ReleasePolicy
from cleanroom.release.verify import replay


def _lineage(entry: dict[str, Any], builder: Verifier | None) -> dict[str, Any] | None:
    env = entry.get("attestation")
    if env is None:
        return None
    if builder is None:
        body = dsse.parse(env)[1]
        verified = False
    else:
        body, _ = dsse.verify(env, [builder])
        verified = True
    stmt = parse_statement(body, PROVENANCE_TYPE)
    if entry["model_version"] not in subject_digests(stmt):
        raise AttestationError("the provenance is not about this model version")
    params = stmt["predicate"]["buildDefinition"]["externalParameters"]
    return {
        **params.get("lineage", {}),
        "source": params.get("source"),
        "provenance_verified": verified,
    }


def timeline(
    entries: Iterable[tuple[int, dict[str, Any]]],
    *,
    builder: Verifier | None = None,
    policy: ReleasePolicy | None = None,
) -> list[dict[str, Any]]:
    """Model versions in the order they went live, each with when
    (``live_from_ms`` .. ``live_until_ms``), its configuration and that
    configuration's release (approved by whom, deployed when), its lineage
    (checked against the builder's key if given), and the feeds it served."""
    entries = list(entries)
    releases = replay(entries, policy)
    out: list[dict[str, Any]] = []
    served: dict[str, int] = {}
    for index, e in entries:
        t = e.get("type")
        if t == "feed.served":
            served[e["model_version"]] = served.get(e["model_version"], 0) + 1
        if t not in ("model.trained", "model.updated") or not e.get("model_version"):
            continue
        if out and out[-1]["version"] == e["model_version"]:
            continue
        config = e.get("ranking_config") or (out[-1]["ranking_config"] if out else None)
        release = releases.artifacts.get(config) if config else None
        try:
            lineage = _lineage(e, builder) if t == "model.trained" else None
        except AttestationError as err:
            lineage = {"error": err.message}
        item = {
            "version": e["model_version"],
            "how": "trained" if t == "model.trained" else f"updated ({e.get('reason', '')})",
            "from_version": e.get("from_version"),
            "index": index,
            "live_from_ms": e.get("at_ms"),
            "live_until_ms": None,
            "ranking_config": config,
            "config_release": None
            if release is None
            else {
                "name": release["name"],
                "submitted_by": release["submitted_by"],
                "approved_by": list(releases.verdict(config).counted),
                "approved": releases.verdict(config).approved,
                "evaluation": releases.evaluations.get(config),
                "deployed_ms": [
                    d["at_ms"] for d in releases.deployments if d.get("artifact") == config
                ],
            },
            "records": e.get("records"),
            "lineage": lineage if lineage is not None else (out[-1]["lineage"] if out else None),
        }
        if out:
            out[-1]["live_until_ms"] = item["live_from_ms"]
        out.append(item)
    for item in out:
        item["feeds_served"] = served.get(item["version"], 0)
    return out


def live_at(models: list[dict[str, Any]], at_ms: int) -> dict[str, Any] | None:
    """The model version that was live at ``at_ms``."""
    best = None
    for m in models:
        if m["live_from_ms"] is not None and m["live_from_ms"] <= at_ms:
            best = m
    return best


def served_feed(entries: Iterable[tuple[int, dict[str, Any]]], feed: str) -> list[dict[str, Any]]:
    """The ``feed.served`` commitments of one feed (each names its model version)."""
    return [
        {**e, "index": i}
        for i, e in entries
        if e.get("type") == "feed.served" and e.get("feed") == feed
    ]
