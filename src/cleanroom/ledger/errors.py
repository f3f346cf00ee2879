"""Exceptions raised by the ledger.

Every error names what went wrong and, where it helps, what to do about it.
The API maps them to RFC 9457 problem+json (using ``status``), the CLI to one
line and exit code 2. Their base lives in the storage layer, the one part the
standalone ledger may import.
"""

from __future__ import annotations

from cleanroom.storage.errors import CleanroomError


class LedgerError(CleanroomError):
    """Base class of every ledger error."""

    status = 400
    title = "Ledger error"


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof is malformed or does not verify."""

    status = 422
    title = "Proof does not verify"


class RangeError(LedgerError):
    """An index or tree size lies beyond what the tree holds, or is negative."""

    status = 400
    title = "Index or size out of range"


class NotFoundError(LedgerError):
    """A requested entry, tile or checkpoint does not exist (yet)."""

    status = 404
    title = "Not found"


class NoteError(LedgerError):
    """A signed note is malformed (C2SP signed-note)."""

    status = 400
    title = "Malformed signed note"


class SignatureError(LedgerError):
    """No trusted signature verifies, or a known key's signature fails."""

    status = 403
    title = "Signature does not verify"


class CheckpointError(LedgerError):
    """A checkpoint body is malformed (C2SP tlog-checkpoint)."""

    status = 400
    title = "Malformed checkpoint"


class EntryError(LedgerError):
    """A ledger entry is malformed (not a JSON object with type and v, too large...)."""

    status = 422
    title = "Invalid ledger entry"


class ReservedTypeError(EntryError):
    """An entry of a type only the clean room's own components write."""

    status = 403
    title = "Reserved entry type"


class TileError(LedgerError):
    """A tile or entry bundle path or body is malformed."""

    status = 400
    title = "Malformed tile"


class KeyFormatError(LedgerError):
    """A signer or verifier key string is malformed."""

    status = 400
    title = "Malformed key"


class ConflictError(LedgerError):
    """A compare-and-swap lost: the state changed underneath (retry with fresh state)."""

    status = 409
    title = "Conflict"


class InconsistencyError(LedgerError):
    """Two validly signed checkpoints cannot both be true: evidence of log misbehaviour."""

    status = 409
    title = "Inconsistent checkpoints"


class EnvelopeError(LedgerError):
    """A DSSE envelope or the statement it carries is malformed, or no signature
    verifies with the keys given."""

    status = 422
    title = "Invalid signed envelope"
