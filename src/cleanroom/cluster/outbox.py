"""The transactional outbox: a message to the other nodes is a row written in
the same transaction as the change it announces, published to the bus after
the commit, and marked once the bus acknowledged it. A relay publishes the
rows left behind (a node that died between its commit and its publish, a bus
that was away); the bus drops the copies by message id, and every handler is
idempotent. So the bus never holds the only copy of anything acknowledged."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from cleanroom.storage import Database, Migration, migrate

_meta = MetaData()
outbox_t = Table(
    "cluster_outbox",
    _meta,
    Column("n", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("msg_id", String(40), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: ids only
    Column("created_ms", BigInteger, nullable=False),
    Column("published_ms", BigInteger),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


MIGRATIONS = [Migration("outbox", 1, "messages to the other nodes, until published", _create)]
KEEP_PUBLISHED_MS = 600_000  # published rows are kept a while (then deleted)


def _now() -> int:
    return int(time.time() * 1000)


class Outbox:
    """Messages to publish, in the database until the bus has them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)

    def add(self, conn: Connection, kind: str, payload: dict[str, Any]) -> str:
        """A message in the caller's transaction; its id."""
        msg_id = secrets.token_hex(16)
        conn.execute(
            insert(outbox_t).values(
                msg_id=msg_id, kind=kind, payload=json.dumps(payload), created_ms=_now()
            )
        )
        return msg_id

    def write(self, kind: str, payload: dict[str, Any]) -> str:
        """A message in a transaction of its own (after the change it announces)."""
        with self.db.write() as conn:
            return self.add(conn, kind, payload)

    def published(self, msg_ids: list[str]) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(outbox_t).where(outbox_t.c.msg_id.in_(msg_ids)).values(published_ms=_now())
            )

    def pending(self, older_than_ms: int, limit: int = 500) -> list[tuple[str, str, dict]]:
        """Messages not yet published, oldest first: (id, kind, payload)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(outbox_t.c.msg_id, outbox_t.c.kind, outbox_t.c.payload)
                .where(outbox_t.c.published_ms.is_(None))
                .where(outbox_t.c.created_ms < _now() - older_than_ms)
                .order_by(outbox_t.c.n)
                .limit(limit)
            ).all()
        return [(r.msg_id, r.kind, json.loads(r.payload)) for r in rows]

    def prune(self) -> int:
        with self.db.write() as conn:
            return conn.execute(
                delete(outbox_t).where(outbox_t.c.published_ms < _now() - KEEP_PUBLISHED_MS)
            ).rowcount
