"""Envelope encryption: per-user data keys wrapped by a key-encryption key (KEK).

Each data subject gets a random 256-bit data key (DEK). Protected fields are
encrypted with it under AES-256-GCM, with associated data binding the
ciphertext to its table, row and user, so a ciphertext moved to another row or
user fails to decrypt. The DEK is stored only wrapped by the KEK, which a
:class:`KeyManager` holds: by default a local keyring file (mode 0600); the
interface is what a real KMS (e.g. Vault Transit) implements. Destroying a
user's wrapped DEK makes every copy of their ciphertexts — backups, replicas,
old database files — unreadable: crypto-shredding.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.storage.errors import CleanroomError
from cleanroom.storage.secrets import read_secret, write_secret

NONCE = 12
KEY_BYTES = 32
_FORMAT = 1


class KeyringError(CleanroomError):
    """The keyring file is missing, unreadable, too permissive or malformed."""

    status = 500
    title = "Key management error"


class DecryptionError(CleanroomError):
    """A ciphertext or wrapped key was altered, moved, or its key is gone."""

    status = 500
    title = "Decryption failed"


def aad_prefix(table: str) -> bytes:
    """The start of every associated data of ``table`` (bulk readers append
    ``row NUL subject`` to it themselves)."""
    return b"cleanroom/v1\x00" + table.encode() + b"\x00"


def aad(table: str, row: str, subject: str) -> bytes:
    """Associated data that binds a ciphertext to its table, row and data subject."""
    for part in (table, row, subject):
        if "\x00" in part:
            raise CleanroomError("associated data parts cannot contain NUL")
    return aad_prefix(table) + f"{row}\x00{subject}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(aead: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM with a ready cipher: ``nonce || ciphertext+tag``."""
    nonce = os.urandom(NONCE)
    return nonce + aead.encrypt(nonce, plaintext, associated)


def unseal(aead: AESGCM, blob: bytes, associated: bytes) -> bytes:
    """Open what :func:`seal` made, or raise :class:`DecryptionError`."""
    if len(blob) < NONCE + 16:
        raise DecryptionError("ciphertext is too short")
    try:
        return aead.decrypt(blob[:NONCE], blob[NONCE:], associated)
    except InvalidTag:
        raise DecryptionError(
            "ciphertext does not authenticate: altered, moved to another row or user, or wrong key"
        ) from None


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    return seal(AESGCM(key), plaintext, associated)


def decrypt(key: bytes, blob: bytes, associated: bytes) -> bytes:
    return unseal(AESGCM(key), blob, associated)


class KeyManager(Protocol):
    """What the vault needs from a KMS: wrap and unwrap data keys under a KEK."""

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


@dataclass
class LocalKeyring:
    """KEKs in a local JSON file (mode 0600), with rotation.

    Wrapped keys name the KEK that wrapped them, so old data stays readable
    after :meth:`rotate`; new wraps use the current KEK.
    """

    path: Path
    _cache: tuple[tuple[int, ...], dict] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(cls, path: Path) -> LocalKeyring:
        doc = {"format": _FORMAT, "current": "kek-1", "keys": {"kek-1": _b64(new_data_key())}}
        write_secret(Path(path), json.dumps(doc), error=KeyringError)
        return cls(Path(path))

    def _load(self) -> dict:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
        except OSError:
            stamp = None
        if stamp is not None and self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        doc = self._read()
        if stamp is not None:
            self._cache = (stamp, doc)
        return doc

    def _read(self) -> dict:
        text = read_secret(self.path, error=KeyringError, hint="run `cleanroom init`")
        try:
            doc = json.loads(text)
            if doc["format"] != _FORMAT or doc["current"] not in doc["keys"]:
                raise ValueError("unknown format or missing current key")
            return doc
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring {self.path} is malformed: {exc}") from None

    def current_id(self) -> str:
        return self._load()["current"]

    def rotate(self) -> str:
        doc = self._read()  # a fresh parse: the cached document is not modified
        new_id = f"kek-{len(doc['keys']) + 1}"
        doc["keys"][new_id] = _b64(new_data_key())
        doc["current"] = new_id
        write_secret(self.path, json.dumps(doc), replace=True, error=KeyringError)
        return new_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        doc = self._load()
        kid = doc["current"].encode()
        kek = base64.b64decode(doc["keys"][doc["current"]])
        return bytes([len(kid)]) + kid + encrypt(kek, data_key, b"wrap\x00" + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        if not wrapped or len(wrapped) < 1 + wrapped[0]:
            raise DecryptionError("wrapped key is truncated")
        kid = wrapped[1 : 1 + wrapped[0]].decode(errors="replace")
        keys = self._load()["keys"]
        if kid not in keys:
            raise DecryptionError(f"the key-encryption key {kid!r} is not in the keyring")
        kek = base64.b64decode(keys[kid])
        return decrypt(kek, wrapped[1 + wrapped[0] :], b"wrap\x00" + context)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()
