"""Shared fixtures: a real SQLite file and a real PostgreSQL server (own
schema per test), the log and witness keys, a data directory, and two clean
rooms served through the ASGI app — ``api`` (seeded with a few users, videos
and events) and ``trained_api`` (enough events for the recommender to train
on). Helpers that are not fixtures are in ``tests/support.py``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cleanroom.ledger.note import ALG_COSIGNATURE_V1, Signer, generate_signer
from cleanroom.storage import Database, StorageError
from tests.support import NOW, ORIGIN, USER, Api, feed_events, running_api, seed

PG_URL = os.environ.get(
    "CLEANROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


@contextmanager
def pg_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    require_pg()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

REDIS_URL = os.environ.get("CLEANROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _redis_available() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except redis.RedisError as exc:
        return str(exc)


_REDIS_PROBLEM = _redis_available()


@pytest.fixture
def redis_url(worker_id: str) -> Iterator[str]:
    """A Redis database of this test worker's own (1, 2, ...); tests keep to
    their own key prefix in it (``unique_prefix``) and leave it empty."""
    if _REDIS_PROBLEM is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is mandatory under CI=true but unreachable: {_REDIS_PROBLEM}")
        pytest.skip(f"Redis unavailable at {REDIS_URL}: {_REDIS_PROBLEM}")
    n = 1 + int(worker_id[2:]) if worker_id.startswith("gw") else 1
    yield f"{REDIS_URL}/{n}"


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cleanroom.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database on each backend shared by a module's tests that change
    nothing stored (each asserts that it did not)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shared') / 'cleanroom.db'}"
        return
    with pg_schema() as url:
        yield url


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


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    """A clean room on this test's database, seeded with two users, three
    videos and ten events, served through a TestClient."""
    with running_api(tmp_path, db_url, log_signer) as a:
        seed(a)
        yield a


@pytest.fixture(scope="module")
def shared_api(
    module_db_url: str, tmp_path_factory: pytest.TempPathFactory, log_signer
) -> Iterator[Api]:
    """The seeded clean room of ``api``, one per backend and module, for the
    requests that must change nothing (each test asserts that it did not)."""
    with running_api(tmp_path_factory.mktemp("shared"), module_db_url, log_signer) as a:
        seed(a)
        yield a


@pytest.fixture
def trained_api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    """A clean room with 30 users, 60 videos and 600 events, its recommender
    ready (retrain it to train on them)."""
    with running_api(tmp_path, db_url, log_signer) as a:
        rec = a.app.state.recommender
        assert rec.ready.wait(30), rec.error
        for u in range(30):
            assert a.call("PUT", f"/v1/users/u{u}", "app", json=USER).status_code in (200, 201)
        videos = [
            {
                "id": f"v{i}",
                "creator": f"c{i % 9}",
                "topics": [f"t{i % 4}"],
                "created_ms": NOW - 86_400_000 * (1 + i % 5),
            }
            for i in range(60)
        ]
        assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).status_code == 200
        r = a.call("POST", "/v1/events", "app", json={"events": feed_events(30, 60, 20)})
        assert r.status_code == 200, r.text
        yield a


NATS_URL = os.environ.get("CLEANROOM_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_available() -> str | None:
    from cleanroom.cluster.bus import bus_health

    got = bus_health(NATS_URL)
    return None if got["ok"] else got["error"]


_NATS_PROBLEM = _nats_available()


@pytest.fixture
def nats_url() -> str:
    """The NATS JetStream server; each test names its own stream (``unique_prefix``)."""
    if _NATS_PROBLEM is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"NATS is mandatory under CI=true but unreachable: {_NATS_PROBLEM}")
        pytest.skip(f"NATS unavailable at {NATS_URL}: {_NATS_PROBLEM}")
    return NATS_URL
