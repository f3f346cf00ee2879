"""Checkpoints per C2SP tlog-checkpoint: origin, tree size and root hash lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cleanroom.ledger.errors import CheckpointError, LedgerError
from cleanroom.ledger.hashing import HASH_SIZE, b64, unb64

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
