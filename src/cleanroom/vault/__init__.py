"""The vault: protected records under per-user envelope encryption (in progress,
issue 3). For now: data keys, AES-256-GCM with bound associated data, and the
KMS interface with a local keyring."""

from cleanroom.vault.keys import (
    DecryptionError,
    KeyManager,
    KeyringError,
    LocalKeyring,
    aad,
    decrypt,
    encrypt,
    new_data_key,
)

__all__ = [
    "DecryptionError",
    "KeyManager",
    "KeyringError",
    "LocalKeyring",
    "aad",
    "decrypt",
    "encrypt",
    "new_data_key",
]
