"""The provenance of what the clean room builds: the digest of the code it
runs, the builder key, and the signed SLSA provenance and lineage check of
every model it trains."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from cleanroom.ledger.note import Signer, Verifier, generate_signer
from cleanroom.release import (
    INTOTO_PAYLOAD_TYPE,
    PROVENANCE_TYPE,
    NotApproved,
    ReleaseError,
    dsse,
    provenance,
)
from cleanroom.release.digests import files_digest, tree_files
from cleanroom.release.intoto import encode, statement, subject
from cleanroom.room import CleanRoom


@functools.cache
def running_source() -> str:
    """The digest of the code this process runs (the ``cleanroom`` package
    tree, the same digest a source release of it has)."""
    return files_digest(tree_files(Path(__file__).parent.parent))


def builder_key(room: CleanRoom) -> Signer:
    """The clean room's builder key: it signs the provenance of every model it
    trains (made on first use, in the data directory's key folder)."""
    dd = room.data_dir
    if dd is None:
        raise ReleaseError("this clean room has no data directory for its builder key")
    if not dd.has_key("builder"):
        dd.write_key("builder", generate_signer(f"{room.config.origin}/builder"))
    return dd.read_key("builder")


def builder_verifier(room: CleanRoom) -> Verifier | None:
    """The builder's public key, if this clean room has trained a model yet
    (reading never creates the key)."""
    dd = room.data_dir
    if dd is None or not dd.has_key("builder"):
        return None
    return dd.read_key("builder").verifier


def attest_model(
    room: CleanRoom,
    *,
    model_version: str,
    config_digest: str,
    snapshot: str,
    jurisdictions: dict[str, int],
    read_decision: int,
    started_ms: int,
    finished_ms: int,
) -> dict[str, Any]:
    """The SLSA provenance of a trained model, signed by the builder: built by
    this clean room from the approved configuration and a training snapshot
    read through the gate (its lineage: how many records, of which
    jurisdiction, under which decision)."""
    key = builder_key(room)
    pred = provenance(
        builder=f"https://{room.config.origin}/builder",
        build_type="https://cleanroom.dev/build/recommender-model/v1",
        external={
            "source": running_source(),
            "ranking_config": config_digest,
            "lineage": {
                "snapshot": snapshot,
                "records": sum(jurisdictions.values()),
                "jurisdictions": jurisdictions,
                "read_decision": read_decision,
                "purpose": "recommendation",
            },
        },
        materials=[
            ("source", running_source()),
            ("ranking-config", config_digest),
            ("training-snapshot", snapshot),
        ],
        started_ms=started_ms,
        finished_ms=finished_ms,
        invocation=model_version,
    )
    stmt = statement([subject("recommender-model", model_version)], PROVENANCE_TYPE, pred)
    return dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [key])


def check_lineage(room: CleanRoom, jurisdictions: dict[str, int], model_version: str) -> None:
    """Refuse (on the record) a model trained on any record of another
    jurisdiction than this site's."""
    home = room.config.site.jurisdiction
    foreign = {j: n for j, n in jurisdictions.items() if j != home and n}
    if foreign:
        why = (
            f"model {model_version} was trained on records of another jurisdiction "
            f"({', '.join(f'{j}: {n}' for j, n in sorted(foreign.items()))}); only {home} may be"
        )
        refused = NotApproved(
            why,
            hint="train only on data read through the gate for this site",
            artifact=model_version,
        )
        room.releases.refuse("model", refused, by="deploy-check")
        raise refused
