"""Errors of the release part: each says what is wrong and, where it helps,
what to do (the API turns them into problem+json, the CLI into one line)."""

from __future__ import annotations

from cleanroom.storage.errors import CleanroomError


class ReleaseError(CleanroomError):
    """A release request that cannot be done as given."""

    status = 400
    title = "Bad release request"


class AttestationError(ReleaseError):
    """An envelope or statement is malformed, or its signature does not verify."""

    title = "Invalid attestation"


class UnknownArtifact(ReleaseError):
    """No artifact with that digest."""

    status = 404
    title = "Unknown artifact"


class ReviewerError(ReleaseError):
    """An unknown reviewer, a key that does not belong to them, or one who may
    not review."""

    status = 403
    title = "Reviewer not allowed"


class NotApproved(ReleaseError):
    """The deploy check: the artifact has no approved release on the ledger."""

    status = 403
    title = "Artifact not approved"

    def __init__(self, message: str, hint: str | None = None, *, artifact: str = "") -> None:
        super().__init__(message, hint)
        self.artifact = artifact  # what was refused ("" if nothing was deployed)
