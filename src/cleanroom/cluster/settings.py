"""The feed setting each user chose (personalised or not based on profiling),
kept in the database: a user's online state is rebuilt from their events and
this setting, on any node, after any loss of the state store."""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, delete, select

from cleanroom.storage import Database, Migration, migrate

_meta = MetaData()
settings_t = Table(
    "foryou_feed_settings",
    _meta,
    Column("user_id", String(128), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


MIGRATIONS = [Migration("foryou", 1, "the feed setting each user chose", _create)]


class FeedSettings:
    """Users' feed settings (personal data: deleted with the user)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)

    def get(self, user: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(
                select(settings_t.c.mode).where(settings_t.c.user_id == user)
            ).scalar()

    def set(self, user: str, mode: str) -> None:
        row = {"user_id": user, "mode": mode, "updated_ms": int(time.time() * 1000)}
        with self.db.write() as conn:
            self.db.upsert(conn, settings_t, ["user_id"], [row])

    def drop(self, user: str) -> bool:
        with self.db.write() as conn:
            return conn.execute(delete(settings_t).where(settings_t.c.user_id == user)).rowcount > 0
