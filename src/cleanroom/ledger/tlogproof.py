"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a checkpointed log."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cleanroom.ledger import proofs
from cleanroom.ledger.checkpoint import Checkpoint, open_checkpoint
from cleanroom.ledger.errors import LedgerError, ProofError
from cleanroom.ledger.hashing import HASH_SIZE, b64, leaf_hash, unb64
from cleanroom.ledger.note import Note, Verifier

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class TlogProof:
    """A C2SP tlog-proof: an entry's index, its inclusion proof and the checkpoint note it is
    proven in."""

    index: int
    proof: list[bytes]
    note: str
    extra: bytes | None = None

    def render(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [b64(p) for p in self.proof]
        return "\n".join(lines) + "\n\n" + self.note


def parse_tlog_proof(text: str) -> TlogProof:
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ProofError("tlog-proof needs an empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofError(f"tlog-proof must start with {HEADER!r}")
    pos = 1
    extra = None
    if len(lines) > pos and lines[pos].startswith("extra "):
        try:
            extra = unb64(lines[pos][6:], "extra data")
        except LedgerError as exc:
            raise ProofError(exc.message) from None
        pos += 1
    if len(lines) <= pos or not re.fullmatch(r"index (0|[1-9][0-9]{0,18})", lines[pos]):
        raise ProofError("tlog-proof needs an 'index <n>' line")
    index = int(lines[pos][6:])
    try:
        path = [unb64(x, "inclusion proof line", HASH_SIZE) for x in lines[pos + 1 :]]
    except LedgerError as exc:
        raise ProofError(exc.message) from None
    return TlogProof(index, path, note, extra)


def verify_tlog_proof(
    text: str,
    entry: bytes,
    log: Verifier,
    witnesses: list[Verifier] | None = None,
    quorum: int = 0,
    origin: str | None = None,
) -> tuple[Checkpoint, Note]:
    """Verify a tlog-proof for ``entry`` against a log key and a witness quorum."""
    tp = parse_tlog_proof(text)
    cp, note, _ = open_checkpoint(tp.note, log, witnesses, quorum, origin)
    proofs.verify_inclusion(leaf_hash(entry), tp.index, cp.size, tp.proof, cp.root)
    return cp, note
