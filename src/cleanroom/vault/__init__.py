"""The vault: protected users, videos and events under per-user envelope
encryption, at one site of one jurisdiction; every protected access needs a
grant from the gate."""

from cleanroom.vault.grants import AccessDenied, Grant, GrantAuthority
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
from cleanroom.vault.keystore import KeyStore, SubjectKey
from cleanroom.vault.model import (
    EVENT_KINDS,
    FIELD_CLASSES,
    Event,
    InvalidRecord,
    User,
    Video,
)
from cleanroom.vault.residency import ResidencyError, ResidencyPolicy, Site
from cleanroom.vault.store import Conflict, Erasure, Stored, Subject, UnknownRecord, Vault, mask

__all__ = [
    "EVENT_KINDS",
    "FIELD_CLASSES",
    "AccessDenied",
    "Conflict",
    "DecryptionError",
    "Erasure",
    "Event",
    "Grant",
    "GrantAuthority",
    "InvalidRecord",
    "KeyManager",
    "KeyStore",
    "KeyringError",
    "LocalKeyring",
    "ResidencyError",
    "ResidencyPolicy",
    "Site",
    "Stored",
    "Subject",
    "SubjectKey",
    "UnknownRecord",
    "User",
    "Vault",
    "Video",
    "aad",
    "decrypt",
    "encrypt",
    "mask",
    "new_data_key",
]
