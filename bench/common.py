"""Helpers shared by the benchmarks: databases, entries, statistics, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from cleanroom.ledger.entries import commitment
from cleanroom.storage import Database, StorageError

PG_URL = os.environ.get(
    "CLEANROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_SALT = os.urandom(32)


def machine() -> str:
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {cpus} vCPU, {mem:.0f} GiB, Python {platform.python_version()}"


def entry(i: int) -> dict:
    """A realistic ~1 KB ledger entry (an access decision with request context)."""
    return {
        "type": "access.decision",
        "v": 1,
        "principal": f"svc:recommender-{i % 7}",
        "action": "events.read",
        "resource_class": "events",
        "subject": commitment(_SALT, f"user-{i}"),
        "purpose": "recommendation",
        "policy_version": "2026-11-01",
        "outcome": "allow" if i % 13 else "deny",
        "context": {"request_id": f"{i:032x}", "note": "x" * 720},
    }


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh database URL: a new SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
        return
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def pg_available() -> bool:
    db = Database(PG_URL + "?connect_timeout=3")
    try:
        db.check()
        return True
    except StorageError:
        return False
    finally:
        db.dispose()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
