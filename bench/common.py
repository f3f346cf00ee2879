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


def load_into_vault(room, app, users, videos, events, console=None) -> None:
    """A data set straight into the vault (through the gate as ``app``), with
    a progress bar: what a platform's bulk import would do."""
    from rich.progress import Progress

    g, v = room.gate, room.vault
    v.put_users(g.require(app, "write", "Profile", subjects=[u.id for u in users]), users)
    v.put_videos(g.require(app, "write", "Videos"), videos)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading the events into the vault", total=len(events))
        for i in range(0, len(events), 10_000):
            part = events[i : i + 10_000]
            v.add_events(g.require(app, "write", "Events", subjects=[e.user for e in part]), part)
            bar.advance(task, len(part))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
