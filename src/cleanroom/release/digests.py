"""Content digests of what can be released.

A source tree or a policy set is a set of files; its digest is Go's dirhash
"h1" (golang.org/x/mod/sumdb/dirhash.Hash1, what go.sum records for a module):
the SHA-256 of the lines ``<sha256 hex of the file>  <path>\\n`` sorted by
path. We write it as ``sha256:<hex>`` (the same bytes ``h1:`` encodes in
base64), so every artifact has one kind of id and an in-toto subject digest."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cleanroom.ledger.entries import canonical_json
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.hashing import dirhash
from cleanroom.release.errors import ReleaseError

SKIP_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def tree_files(root: Path) -> dict[str, bytes]:
    """The files under ``root`` by slash-separated relative path (caches and
    VCS metadata left out)."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseError(f"{root} is not a directory")
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts) or not p.is_file():
            continue
        out[rel.as_posix()] = p.read_bytes()
    if not out:
        raise ReleaseError(f"{root} holds no files")
    return out


def file_hashes(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def hashes_digest(hashes: dict[str, str]) -> str:
    """A file set's digest from its files' SHA-256 (what a source manifest holds)."""
    try:
        return dirhash(hashes)
    except LedgerError as e:
        raise ReleaseError(e.message) from None


def files_digest(files: dict[str, bytes]) -> str:
    return hashes_digest(file_hashes(files))


def h1(digest: str) -> str:
    """The dirhash ``h1:`` form of a files digest (for comparing with go.sum)."""
    return "h1:" + base64.b64encode(bytes.fromhex(digest.removeprefix("sha256:"))).decode()


def json_digest(doc: object) -> str:
    """Digest of a JSON document's canonical form (RFC 8785)."""
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()
