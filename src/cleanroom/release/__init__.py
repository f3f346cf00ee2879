"""Trusted releases: only reviewed code, models and policies run in the clean
room. Artifacts are identified by content digests, reviewed by principals of
the operator and the oversight body with their own Ed25519 keys, approved by
the release policy, attested as in-toto statements in DSSE envelopes and
recorded on the ledger; the deploy check loads nothing else.

Depends on ``cleanroom.ledger`` (and the storage layer) only."""

from cleanroom.release.digests import files_digest, h1, json_digest, tree_files
from cleanroom.release.dsse import INTOTO_PAYLOAD_TYPE, pae
from cleanroom.release.errors import (
    AttestationError,
    NotApproved,
    ReleaseError,
    ReviewerError,
    UnknownArtifact,
)
from cleanroom.release.intoto import (
    PROVENANCE_TYPE,
    REVIEW_TYPE,
    STATEMENT_TYPE,
    parse_statement,
    provenance,
    review,
    statement,
    subject,
)
from cleanroom.release.policy import ReleasePolicy, Review, Verdict

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "PROVENANCE_TYPE",
    "REVIEW_TYPE",
    "STATEMENT_TYPE",
    "AttestationError",
    "NotApproved",
    "ReleaseError",
    "ReleasePolicy",
    "Review",
    "ReviewerError",
    "UnknownArtifact",
    "Verdict",
    "files_digest",
    "h1",
    "json_digest",
    "pae",
    "parse_statement",
    "provenance",
    "review",
    "statement",
    "subject",
    "tree_files",
]
