"""RFC 9162 §2.1 Merkle tree hashing (SHA-256).

``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``,
and the hash of the empty tree is ``SHA-256("")``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cleanroom.ledger.errors import LedgerError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """The Merkle leaf hash of one entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node from its two children."""
    return _sha256(b"\x01" + left + right).digest()


def perfect_root(hashes: list[bytes]) -> bytes:
    """The root of a perfect subtree whose leaves (or level hashes) are ``hashes``.

    ``len(hashes)`` must be a power of two.
    """
    level = hashes
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def mth(hashes: list[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1), any length."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    # Fold the right edge: perfect subtrees from the binary decomposition of n.
    stack: list[bytes] = []
    start = 0
    for bit in reversed(range(n.bit_length())):
        width = 1 << bit
        if n & width:
            stack.append(perfect_root(hashes[start : start + width]))
            start += width
    root = stack.pop()
    while stack:
        root = node_hash(stack.pop(), root)
    return root


def b64(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4), as C2SP texts use it."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | bytes, what: str = "value", size: int | None = None) -> bytes:
    """Strict standard base64 decoding; raises LedgerError naming ``what`` on bad input."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LedgerError(f"{what} is not valid base64") from exc
    if b64(raw) != (text.decode("ascii") if isinstance(text, bytes) else text):
        raise LedgerError(f"{what} is not canonical base64")
    if size is not None and len(raw) != size:
        raise LedgerError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def dirhash(hashes: dict[str, str]) -> str:
    """The digest of a set of files given by their SHA-256 (hex): Go's dirhash
    "h1" (golang.org/x/mod/sumdb/dirhash) — the SHA-256 of the lines
    ``<sha256>  <name>\n`` sorted by name — written ``sha256:<hex>``. What
    releases are named by; here so that an outside verifier checks a release's
    files with the ledger package alone."""
    lines = []
    for name in sorted(hashes):
        if "\n" in name:
            raise LedgerError(f"a file name contains a newline: {name!r}")
        h = str(hashes[name])
        if len(h) != 64 or h.strip("0123456789abcdef"):
            raise LedgerError(f"the hash of {name!r} is not 64 hex digits")
        lines.append(f"{h}  {name}\n")
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def text_files_digest(files: dict[str, str]) -> str:
    """The :func:`dirhash` of a set of text files (UTF-8): what a policy set or
    an infrastructure manifest is released, decided and re-decided by."""
    return dirhash({n: hashlib.sha256(t.encode()).hexdigest() for n, t in files.items()})
