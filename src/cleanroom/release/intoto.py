"""in-toto Statement v1 (https://in-toto.io/Statement/v1) with the two
predicates the clean room uses:

- SLSA Provenance v1 (``https://slsa.dev/provenance/v1``): how an artifact was
  built — the builder is the clean room, the materials are the source digest
  and, for a model, the commitment to its training snapshot;
- a release review (``REVIEW_TYPE``): a reviewer's verdict on an artifact.

Statements are plain dicts (what is signed is their canonical JSON);
:func:`parse_statement` checks one read back and names the first defect."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from cleanroom.ledger.entries import canonical_json
from cleanroom.release.errors import AttestationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
REVIEW_TYPE = "https://cleanroom.dev/release-review/v1"
BUILD_TYPE = "https://cleanroom.dev/build/v1"
DECISIONS = ("approve", "reject")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def subject(name: str, digest: str) -> dict[str, Any]:
    """An in-toto subject from our ``sha256:<hex>`` digest."""
    return {"name": name, "digest": {"sha256": hex_of(digest)}}


def hex_of(digest: str) -> str:
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise AttestationError(f"a digest must look like sha256:<64 hex>, got {digest!r}")
    h = digest[len("sha256:") :]
    if not _HEX64.match(h):
        raise AttestationError(f"a digest must look like sha256:<64 hex>, got {digest!r}")
    return h


def statement(subjects: list[dict[str, Any]], predicate_type: str, predicate: dict) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def provenance(
    *,
    builder: str,
    build_type: str = BUILD_TYPE,
    external: dict[str, Any],
    materials: list[tuple[str, str]],
    started_ms: int,
    finished_ms: int,
    invocation: str,
) -> dict[str, Any]:
    """A SLSA v1 provenance predicate; ``materials`` are (uri, sha256 digest)."""
    return {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": external,
            "resolvedDependencies": [
                {"uri": uri, "digest": {"sha256": hex_of(d)}} for uri, d in materials
            ],
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {
                "invocationId": invocation,
                "startedOn": rfc3339(started_ms),
                "finishedOn": rfc3339(finished_ms),
            },
        },
    }


def review(
    *, reviewer: str, org: str, decision: str, kind: str, comment: str, at_ms: int
) -> dict[str, Any]:
    if decision not in DECISIONS:
        raise AttestationError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    return {
        "reviewer": reviewer,
        "org": org,
        "decision": decision,
        "artifactKind": kind,
        "comment": comment,
        "reviewedOn": rfc3339(at_ms),
    }


def encode(stmt: dict[str, Any]) -> bytes:
    return canonical_json(stmt)


def parse_statement(payload: bytes | str, predicate_type: str | None = None) -> dict[str, Any]:
    """A statement read back, checked: type, subjects with sha256 digests, the
    predicate type (if given) and the fields its predicate must have."""
    try:
        stmt = json.loads(payload)
    except ValueError as e:
        raise AttestationError(f"the statement is not JSON: {e}") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"not an in-toto statement (_type must be {STATEMENT_TYPE})")
    subjects = stmt.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise AttestationError("the statement has no subject")
    for s in subjects:
        d = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(d, dict) or not _HEX64.match(str(d.get("sha256", ""))):
            raise AttestationError("every subject needs a name and a sha256 digest")
    ptype = stmt.get("predicateType")
    if predicate_type is not None and ptype != predicate_type:
        raise AttestationError(f"predicateType is {ptype!r}, expected {predicate_type!r}")
    pred = stmt.get("predicate")
    if not isinstance(pred, dict):
        raise AttestationError("the statement has no predicate object")
    if ptype == REVIEW_TYPE:
        for k in ("reviewer", "org", "decision", "artifactKind", "reviewedOn"):
            if not isinstance(pred.get(k), str) or not pred[k]:
                raise AttestationError(f"a review predicate needs {k!r}")
        if pred["decision"] not in DECISIONS:
            raise AttestationError(f"a review's decision must be one of {', '.join(DECISIONS)}")
    elif ptype == PROVENANCE_TYPE:
        bd, rd = pred.get("buildDefinition"), pred.get("runDetails")
        if not isinstance(bd, dict) or not isinstance(bd.get("buildType"), str):
            raise AttestationError("a provenance predicate needs buildDefinition.buildType")
        if not isinstance(rd, dict) or not isinstance(rd.get("builder", {}).get("id"), str):
            raise AttestationError("a provenance predicate needs runDetails.builder.id")
    return stmt


def subject_digests(stmt: dict[str, Any]) -> list[str]:
    """The statement's subjects as ``sha256:<hex>`` digests."""
    return [f"sha256:{s['digest']['sha256']}" for s in stmt["subject"]]
