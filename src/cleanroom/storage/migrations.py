"""Versioned schema migrations, per component.

Each part declares its own migrations (``Migration(component, version, apply)``)
and owns its tables; ``migrate`` applies the ones a database has not seen yet,
in version order, each in its own write transaction, and records them in
``schema_migrations``. Concurrent processes migrating the same database are
serialised (a write lock on SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)

from cleanroom.storage.engine import Database

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _meta,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
_LOCK_KEY = 0x636C65616E  # "clean"


@dataclass(frozen=True)
class Migration:
    """One schema migration of a component, applied once, in order."""

    component: str
    version: int
    description: str
    apply: Callable[[Connection], None]


def migrate(db: Database, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply every migration not yet recorded; returns those applied now."""
    pending = sorted(migrations, key=lambda m: (m.component, m.version))
    with db.write() as conn:
        _lock(db, conn)
        _meta.create_all(conn, tables=[schema_migrations])
    applied: list[Migration] = []
    for m in pending:
        with db.write() as conn:
            _lock(db, conn)
            done = conn.execute(
                select(schema_migrations.c.version).where(
                    schema_migrations.c.component == m.component,
                    schema_migrations.c.version == m.version,
                )
            ).first()
            if done:
                continue
            m.apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    component=m.component,
                    version=m.version,
                    description=m.description,
                    applied_at=datetime.now(UTC),
                )
            )
            applied.append(m)
    return applied


def add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    """Add a nullable column to a table made before it existed (a table made
    since already has it)."""
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def applied_versions(db: Database) -> dict[str, int]:
    """The highest applied version per component."""
    with db.read() as conn:
        _meta.create_all(conn, tables=[schema_migrations], checkfirst=True)
        rows = conn.execute(select(schema_migrations.c.component, schema_migrations.c.version))
        out: dict[str, int] = {}
        for component, version in rows:
            out[component] = max(version, out.get(component, 0))
        return out


def _lock(db: Database, conn: Connection) -> None:
    if not db.is_sqlite:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
