"""Per-subject secrets: each user's wrapped data key and commitment salt.

They live in their own store, apart from the records they protect (default: a
SQLite file under ``keys/`` with ``secure_delete`` on), inside the KMS
boundary. A copy of the main database therefore holds only ciphertexts and key
ids: once :meth:`KeyStore.destroy` removes a subject's entry, no copy of the
records — backup, replica or a file taken before the deletion — can be
decrypted, and the ledger's commitments to that subject can no longer be
linked to them.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)

from cleanroom.storage import Database, Migration, migrate
from cleanroom.vault.keys import DecryptionError, KeyManager, new_data_key

SALT_BYTES = 32

_metadata = MetaData()
subject_keys = Table(
    "vault_subject_keys",
    _metadata,
    Column("key_id", String(40), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("salt", LargeBinary(SALT_BYTES), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def _create(conn: Connection) -> None:
    _metadata.create_all(conn, tables=[subject_keys])


MIGRATIONS = [Migration("keystore", 1, "wrapped subject data keys and salts", _create)]


@dataclass(frozen=True)
class SubjectKey:
    """A subject's unwrapped data key (as a ready AEAD) and commitment salt."""

    key_id: str
    aead: AESGCM
    salt: bytes
    dek: bytes = field(repr=False, default=b"")


def new_key_id() -> str:
    return "dk-" + secrets.token_hex(12)


class KeyStore:
    """Wrapped data keys, unwrapped on demand by the :class:`KeyManager`.

    Unwrapped keys are cached in memory for ``ttl`` seconds (bulk decryption
    touches each user's key once); :meth:`destroy` drops the cache entry, and the
    ttl bounds how long another process may still hold a destroyed key.
    """

    def __init__(
        self, db: Database, kms: KeyManager, *, ttl: float = 60.0, capacity: int = 200_000
    ) -> None:
        self.db = db
        self.kms = kms
        self.ttl = ttl
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[float, SubjectKey]] = OrderedDict()
        self._lock = threading.Lock()
        migrate(db, MIGRATIONS)

    def new(self) -> SubjectKey:
        """A fresh key, not stored yet (see :meth:`store`)."""
        dek = new_data_key()
        return SubjectKey(new_key_id(), AESGCM(dek), os.urandom(SALT_BYTES), dek)

    def store_many(self, keys: list[SubjectKey]) -> None:
        """Wrap and store keys made by :meth:`new` (durable before this returns)."""
        now = datetime.now(UTC)
        rows = [
            {
                "key_id": k.key_id,
                "wrapped": self.kms.wrap(k.dek, k.key_id.encode()),
                "salt": k.salt,
                "created_at": now,
            }
            for k in keys
        ]
        if rows:
            with self._write() as conn:
                conn.execute(insert(subject_keys), rows)
            self._remember(keys)

    def get(self, key_ids: list[str] | set[str]) -> dict[str, SubjectKey]:
        """The keys that still exist, by id (destroyed ids are simply absent)."""
        now = time.monotonic()
        found: dict[str, SubjectKey] = {}
        missing = []
        with self._lock:
            for kid in key_ids:
                hit = self._cache.get(kid)
                if hit is not None and hit[0] > now:
                    found[kid] = hit[1]
                else:
                    missing.append(kid)
        if missing:
            loaded = []
            with self.db.read() as conn:
                for i in range(0, len(missing), 900):
                    chunk = missing[i : i + 900]
                    for row in conn.execute(
                        select(
                            subject_keys.c.key_id, subject_keys.c.wrapped, subject_keys.c.salt
                        ).where(subject_keys.c.key_id.in_(chunk))
                    ):
                        dek = self.kms.unwrap(row.wrapped, row.key_id.encode())
                        loaded.append(SubjectKey(row.key_id, AESGCM(dek), bytes(row.salt), dek))
            self._remember(loaded)
            found.update({k.key_id: k for k in loaded})
        return found

    def require(self, key_id: str) -> SubjectKey:
        key = self.get([key_id]).get(key_id)
        if key is None:
            raise DecryptionError(
                f"data key {key_id} has been destroyed: the subject's data is unreadable"
            )
        return key

    def destroy(self, key_ids: list[str]) -> int:
        """Delete the wrapped keys and salts; returns how many existed."""
        with self._lock:
            for kid in key_ids:
                self._cache.pop(kid, None)
        if not key_ids:
            return 0
        with self._write() as conn:
            n = conn.execute(delete(subject_keys).where(subject_keys.c.key_id.in_(key_ids)))
            count = n.rowcount
        if self.db.is_sqlite:
            # Move the zeroed pages into the main file and empty the WAL, so no
            # earlier frame still holds the destroyed key.
            with self.db.engine.connect() as raw:
                raw.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def count(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(subject_keys)).scalar_one()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that, on SQLite, overwrites deleted content with zeros."""
        with self.db.write() as conn:
            if self.db.is_sqlite:
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            yield conn

    def _remember(self, keys: list[SubjectKey]) -> None:
        deadline = time.monotonic() + self.ttl
        with self._lock:
            for k in keys:
                self._cache[k.key_id] = (deadline, k)
                self._cache.move_to_end(k.key_id)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
