"""The transparency ledger: an RFC 9162 Merkle log with C2SP checkpoints, tiles,
witness cosigning and an outside monitor.

Importable on its own (it needs only ``cleanroom.storage`` for the server half;
verifying — proofs, notes, checkpoints, the monitor — needs no database), so
the oversight body can run it on its own machines.
"""

from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.entries import (
    canonical_json,
    commitment,
    decode_entry,
    encode_entry,
    parse_entry_json,
)
from cleanroom.ledger.errors import (
    CheckpointError,
    ConflictError,
    EntryError,
    InconsistencyError,
    KeyFormatError,
    LedgerError,
    NoteError,
    NotFoundError,
    ProofError,
    RangeError,
    SignatureError,
    TileError,
)
from cleanroom.ledger.hashing import EMPTY_ROOT, leaf_hash, mth, node_hash
from cleanroom.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Signer,
    Verifier,
    generate_signer,
    open_note,
    parse_note,
    parse_signer,
    parse_verifier,
    sign_note,
)
from cleanroom.ledger.proofs import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)
from cleanroom.ledger.tree import MemoryTree

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointError",
    "ConflictError",
    "EntryError",
    "InconsistencyError",
    "KeyFormatError",
    "LedgerError",
    "MemoryTree",
    "NotFoundError",
    "NoteError",
    "ProofError",
    "RangeError",
    "SignatureError",
    "Signer",
    "TileError",
    "Verifier",
    "canonical_json",
    "commitment",
    "consistency_proof",
    "decode_entry",
    "encode_entry",
    "generate_signer",
    "inclusion_proof",
    "leaf_hash",
    "mth",
    "node_hash",
    "open_note",
    "parse_checkpoint",
    "parse_entry_json",
    "parse_note",
    "parse_signer",
    "parse_verifier",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]
