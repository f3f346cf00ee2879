"""Checkpoints per C2SP tlog-checkpoint: origin, tree size and root hash lines."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from cleanroom.ledger.errors import CheckpointError, LedgerError, SignatureError
from cleanroom.ledger.hashing import HASH_SIZE, b64, unb64
from cleanroom.ledger.note import Note, Verifier, open_note

MAX_CLOCK_SKEW = 600

_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")


@dataclass(frozen=True)
class Checkpoint:
    """The body of a checkpoint note."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def text(self) -> str:
        """The note text, ending in a newline."""
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (without signatures)."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, size and root hash lines")
    origin, size_s, root_s, *ext = lines
    if not origin or origin.strip() != origin:
        raise CheckpointError("checkpoint origin line is empty or padded")
    if not _SIZE_RE.match(size_s) or int(size_s) >= 2**63:
        raise CheckpointError(f"checkpoint tree size {size_s!r} is not a decimal size")
    try:
        root = unb64(root_s, "checkpoint root hash", HASH_SIZE)
    except LedgerError as exc:
        raise CheckpointError(exc.message) from exc
    if any(not line for line in ext):
        raise CheckpointError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


def open_checkpoint(
    text: str,
    log: Verifier,
    witnesses: list[Verifier] | None = None,
    quorum: int = 0,
    origin: str | None = None,
) -> tuple[Checkpoint, Note, list[str]]:
    """Verify a checkpoint note against a policy: the log's key, a witness quorum
    and the origin (default: the log key's name).

    Returns the checkpoint, the note and the names of the witnesses whose
    cosignatures verified. Cosignatures dated in the future are refused.
    """
    note = open_note(text, [log, *(witnesses or [])])
    if not any(s.name == log.name and s.key_id == log.key_id for s in note.verified):
        raise SignatureError("checkpoint is not signed by the pinned log key")
    now = time.time()
    cosigners = []
    for s in note.verified:
        if (s.name, s.key_id) == (log.name, log.key_id):
            continue
        if s.timestamp is not None and s.timestamp > now + MAX_CLOCK_SKEW:
            raise SignatureError(f"cosignature from {s.name} is dated in the future")
        cosigners.append(s.name)
    if len(cosigners) < quorum:
        raise SignatureError(
            f"checkpoint has {len(cosigners)} pinned witness cosignatures; the quorum is {quorum}"
        )
    cp = parse_checkpoint(note.text)
    expected = origin or log.name
    if cp.origin != expected:
        raise SignatureError(f"checkpoint origin {cp.origin!r} is not {expected!r}")
    return cp, note, cosigners
