"""The vault's tables (it owns them; other parts go through its functions).

User ids and event times stay in clear as index columns (the vault must find a
user's rows to serve and delete them); everything else personal is ciphertext
under the owner's data key. Videos are interoperable data and stored in clear.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    inspect,
    select,
    text,
    update,
)

from cleanroom.storage import Migration

metadata = MetaData()

users = Table(
    "vault_users",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("jurisdiction", String(8), nullable=False, index=True),
    Column("site", String(100), nullable=False),
    Column("key_id", String(40), nullable=False, unique=True),
    Column("profile", LargeBinary, nullable=False),  # AES-GCM of the protected fields
    Column("public", Text, nullable=False),  # public profile (interoperable), JSON
    Column("synthetic", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # how many events the user has had stored: the last event's sequence number
    Column("events", BigInteger, nullable=False, server_default="0"),
)

videos = Table(
    "vault_videos",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("creator", String(128), nullable=False, index=True),
    Column("topics", Text, nullable=False),  # JSON list
    Column("language", String(16)),
    Column("region", String(8)),
    Column("public", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

events = Table(
    "vault_events",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # AES-GCM of video, kind, watch, context
    # the event's place in its user's order (1, 2, ...): a user's online state
    # is the fold of their events in this order, through some sequence number
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Index("vault_events_user_ts", "user_id", "ts_ms"),
)

_V1 = [users, videos, events]


def _create(conn: Connection) -> None:
    metadata.create_all(conn, tables=_V1)


def _add_sequences(conn: Connection) -> None:
    """Number each user's events (the order they were stored in, as far as the
    old rows tell it: time, then id) and keep each user's count."""
    have = {c["name"] for c in inspect(conn).get_columns("vault_events")}
    if "seq" not in have:  # a database created before sequences
        conn.execute(text("ALTER TABLE vault_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0"))
        conn.execute(text("ALTER TABLE vault_users ADD COLUMN events BIGINT NOT NULL DEFAULT 0"))
    rows = conn.execute(
        select(events.c.id, events.c.user_id)
        .where(events.c.seq == 0)
        .order_by(events.c.user_id, events.c.ts_ms, events.c.id)
    ).all()
    counts: dict[str, int] = {}
    numbered = []
    for eid, user in rows:
        counts[user] = counts.get(user, 0) + 1
        numbered.append({"eid": eid, "n": counts[user]})
    if numbered:
        conn.execute(
            update(events).where(events.c.id == bindparam("eid")).values(seq=bindparam("n")),
            numbered,
        )
        conn.execute(
            update(users).where(users.c.id == bindparam("uid")).values(events=bindparam("n")),
            [{"uid": u, "n": n} for u, n in counts.items()],
        )
    conn.execute(
        text(
            "CREATE UNIQUE INDEX IF NOT EXISTS vault_events_user_seq ON vault_events (user_id, seq)"
        )
    )


# (deletion orders were created here too; they are the gate's now: gate/deletion.py)
MIGRATIONS = [
    Migration("vault", 1, "users, videos, events", _create),
    Migration("vault", 2, "each user's events numbered in the order stored", _add_sequences),
]
