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
    Index("vault_events_user_ts", "user_id", "ts_ms"),
)

_V1 = [users, videos, events]


def _create(conn: Connection) -> None:
    metadata.create_all(conn, tables=_V1)


# (deletion orders were created here too; they are the gate's now: gate/deletion.py)
MIGRATIONS = [Migration("vault", 1, "users, videos, events", _create)]
