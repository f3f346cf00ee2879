"""Served feeds' records in the database, where every node finds every feed:
a cursor from another node's page, a replay of a feed another node served.

A record holds the feed's inputs (the user's state as folded, the pool by
version, model version, ranking configuration, seed, mode) and the list it
served, encrypted under the user's data key (``seal``/``open``: the vault's),
so deleting the user shreds every copy. Pools are aggregates, stored once per
version, in clear. Records older than the retention (``RETAIN_MS``, a
published number the oversight body's sampling respects) are pruned."""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError

from cleanroom.foryou.engine import FeedRecord
from cleanroom.foryou.pool import Pool
from cleanroom.foryou.records import pool_from_canonical
from cleanroom.storage import Database, Migration, migrate

RETAIN_MS = 30 * 86_400_000
TABLE = "foryou_feed_records"

_meta = MetaData()
records_t = Table(
    TABLE,
    _meta,
    Column("feed", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),  # sealed under the user's key
    Index("foryou_feed_records_created", "created_ms"),
)
pools_t = Table(
    "foryou_pools",
    _meta,
    Column("version", String(80), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),  # zlib of the canonical JSON
)


_INSERT = records_t.insert()


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


MIGRATIONS = [Migration("feed-records", 1, "served feeds' records and their pools", _create)]

Seal = Callable[[str, str, str, bytes], bytes]  # (user, table, row, data) -> blob


def _pack(doc: Any) -> bytes:
    return zlib.compress(orjson.dumps(doc), 1)


def _unpack(blob: bytes) -> Any:
    return orjson.loads(zlib.decompress(blob))


class DatabaseRecords:
    """Feed records every node shares (a :class:`~cleanroom.foryou.records.FeedRecords`)."""

    def __init__(self, db: Database, seal: Seal, open_: Seal, *, cache: int = 64) -> None:
        self.db = db
        self.seal, self.open = seal, open_
        migrate(db, MIGRATIONS)
        self._pools: OrderedDict[str, Pool] = OrderedDict()  # stored (or read) here
        self._cache = cache
        self._lock = threading.Lock()

    def put(self, record: FeedRecord) -> None:
        """Store a served feed's record now, in a transaction of its own (the
        clean room writes it with its ledger entry instead: :meth:`writer`)."""
        with self.db.write() as conn:
            self.writer(record)(conn)
        self.committed(record)

    def writer(self, record: FeedRecord) -> Callable[[Connection], None]:
        """The record's write in a transaction of the caller's (the ledger's: a
        record is committed with the entry that commits to it, one transaction
        for both); :meth:`committed` once that transaction is."""
        row = self._row(record)

        def write(conn: Connection) -> None:
            if not self._known(record.pool.version):
                self._store_pool(conn, record.pool, row["created_ms"])
            conn.execute(_INSERT, row)

        return write

    def committed(self, record: FeedRecord) -> None:
        self._remember(record.pool)

    def _row(self, record: FeedRecord) -> dict[str, Any]:
        return {
            "feed": record.feed,
            "user_id": record.user,
            "created_ms": int(time.time() * 1000),
            "body": self.seal(record.user, TABLE, record.feed, _pack(record.to_doc())),
        }

    def get(self, feed: str) -> FeedRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(records_t.c.user_id, records_t.c.body).where(records_t.c.feed == feed)
            ).first()
        if row is None:
            return None
        try:
            doc = _unpack(self.open(row.user_id, TABLE, feed, row.body))
        except LookupError:  # the user is gone: so is what was kept of them
            return None
        pool = self.pool(doc["pool_version"])
        return None if pool is None else FeedRecord.from_doc(doc, pool)

    def pool(self, version: str) -> Pool | None:
        with self._lock:
            if version in self._pools:
                return self._pools[version]
        with self.db.read() as conn:
            body = conn.execute(select(pools_t.c.body).where(pools_t.c.version == version)).scalar()
        if body is None:
            return None
        pool = pool_from_canonical(_unpack(body))
        if pool.version != version:  # altered where it is stored
            raise ValueError(f"the stored pool {version} does not hash to its version")
        self._remember(pool)
        return pool

    def drop_user(self, user: str) -> int:
        with self.db.write() as conn:
            return conn.execute(delete(records_t).where(records_t.c.user_id == user)).rowcount

    def prune(self, now_ms: int | None = None) -> int:
        """Drop records older than the retention."""
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - RETAIN_MS
        with self.db.write() as conn:
            return conn.execute(delete(records_t).where(records_t.c.created_ms < cutoff)).rowcount

    def _known(self, version: str) -> bool:
        with self._lock:
            return version in self._pools

    def _remember(self, pool: Pool) -> None:
        with self._lock:
            self._pools[pool.version] = pool
            self._pools.move_to_end(pool.version)
            while len(self._pools) > self._cache:
                self._pools.popitem(last=False)

    def _store_pool(self, conn: Connection, pool: Pool, now: int) -> None:
        exists = conn.execute(
            select(pools_t.c.version).where(pools_t.c.version == pool.version)
        ).first()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        pools_t.insert().values(
                            version=pool.version, created_ms=now, body=_pack(pool.canonical())
                        )
                    )
            except IntegrityError:  # another node stored the same pool just now
                pass
