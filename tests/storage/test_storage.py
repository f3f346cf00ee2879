"""Storage: one URL selects SQLite or PostgreSQL; migrations are versioned and idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, text

from cleanroom.ledger import schema as ledger_schema
from cleanroom.storage import Database, Migration, StorageError, applied_versions, migrate
from cleanroom.storage.engine import normalise_url


def test_sqlite_is_wal_with_full_sync(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    db.dispose()


def test_urls_are_normalised_and_bad_ones_rejected() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(StorageError):
        Database("mysql://u@h/db")
    with pytest.raises(StorageError):
        Database("sqlite://")
    with pytest.raises(StorageError):
        Database("not a url")


def test_unreachable_server_is_a_clear_error() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot connect"), db.read():
        pass


def test_migrations_apply_once_in_order(db: Database) -> None:
    meta = MetaData()
    t = Table("demo_things", meta, Column("id", Integer, primary_key=True), Column("n", Integer))
    calls: list[int] = []

    def v1(conn):
        calls.append(1)
        meta.create_all(conn, tables=[t])

    def v2(conn):
        calls.append(2)
        conn.execute(t.insert().values(id=1, n=42))

    migs = [Migration("demo", 2, "seed", v2), Migration("demo", 1, "create", v1)]
    assert [m.version for m in migrate(db, migs)] == [1, 2]
    assert migrate(db, migs) == []
    assert calls == [1, 2]
    assert applied_versions(db)["demo"] == 2
    with db.read() as conn:
        assert conn.execute(select(t.c.n)).scalar_one() == 42


def test_failed_migration_leaves_nothing_half_done(db: Database) -> None:
    def boom(conn):
        conn.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError):
        migrate(db, [Migration("bad", 1, "boom", boom)])
    assert "bad" not in applied_versions(db)
    # The ledger's own migrations still apply cleanly afterwards.
    migrate(db, ledger_schema.MIGRATIONS)
    assert applied_versions(db)["ledger"] == 3  # entries, the search index, its mark
