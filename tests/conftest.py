"""Shared fixtures: a real SQLite file and a real PostgreSQL server (own schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cleanroom.ledger.note import ALG_COSIGNATURE_V1, Signer, generate_signer
from cleanroom.storage import Database, StorageError

PG_URL = os.environ.get(
    "CLEANROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ORIGIN = "test.example/log"


def _pg_available() -> str | None:
    db = Database(PG_URL + "?connect_timeout=3")
    try:
        db.check()
        return None
    except StorageError as exc:  # report why
        return exc.message
    finally:
        db.dispose()


_PG_PROBLEM = _pg_available()


def require_pg() -> None:
    if _PG_PROBLEM is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is mandatory under CI=true but unreachable: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL unavailable: {_PG_PROBLEM}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_pg()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cleanroom.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def log_signer() -> Signer:
    return generate_signer(ORIGIN)


@pytest.fixture(scope="session")
def witness_signer() -> Signer:
    return generate_signer("witness.example/w1", ALG_COSIGNATURE_V1)


@pytest.fixture
def data_dir(tmp_path: Path, db_url: str, log_signer: Signer):
    """A fresh data directory on this test's database, with the log key."""
    from cleanroom.room.config import Config, DataDir

    dd = DataDir(tmp_path / "dd")
    dd.save(Config(origin=ORIGIN, database_url=db_url))
    dd.write_key("log", log_signer)
    return dd


def _free_port_url() -> str:
    """The URL of a local port nothing listens on."""
    from cleanroom.ledger.serving import free_port

    return f"http://127.0.0.1:{free_port('127.0.0.1')}/witness"
