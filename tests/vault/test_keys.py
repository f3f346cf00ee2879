"""Envelope encryption: bound associated data, wrapped keys, keyring hygiene."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cleanroom.vault import DecryptionError, KeyringError, LocalKeyring, aad, decrypt, encrypt
from cleanroom.vault.keys import new_data_key


def test_ciphertexts_are_bound_to_table_row_and_user() -> None:
    key = new_data_key()
    blob = encrypt(key, b"+1 555 0100", aad("users", "u1", "u1"))
    assert decrypt(key, blob, aad("users", "u1", "u1")) == b"+1 555 0100"
    for other in (aad("users", "u2", "u1"), aad("events", "u1", "u1"), aad("users", "u1", "u2")):
        with pytest.raises(DecryptionError):
            decrypt(key, blob, other)  # moved or swapped ciphertext
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        decrypt(key, bytes(flipped), aad("users", "u1", "u1"))
    with pytest.raises(DecryptionError):
        decrypt(new_data_key(), blob, aad("users", "u1", "u1"))  # another user's key
    with pytest.raises(DecryptionError):
        decrypt(key, blob[:10], aad("users", "u1", "u1"))
    assert encrypt(key, b"x", b"a") != encrypt(key, b"x", b"a")  # fresh nonces


def test_keyring_wraps_rotates_and_refuses_loose_permissions(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "keys" / "keyring.json")
    assert (ring.path.stat().st_mode & 0o777) == 0o600
    dek = new_data_key()
    wrapped = ring.wrap(dek, b"user:u1")
    assert ring.unwrap(wrapped, b"user:u1") == dek
    with pytest.raises(DecryptionError):
        ring.unwrap(wrapped, b"user:u2")  # a wrapped key cannot move to another user
    assert ring.rotate() == "kek-2"
    assert ring.unwrap(wrapped, b"user:u1") == dek  # old wraps still open
    assert ring.unwrap(ring.wrap(dek, b"c"), b"c") == dek
    with pytest.raises(KeyringError):
        LocalKeyring.create(ring.path)  # never overwrites a keyring
    os.chmod(ring.path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        ring.unwrap(wrapped, b"user:u1")
    os.chmod(ring.path, 0o600)
    ring.path.write_text("{not json")
    with pytest.raises(KeyringError):
        ring.current_id()
    with pytest.raises(KeyringError):
        LocalKeyring(tmp_path / "missing.json").current_id()
