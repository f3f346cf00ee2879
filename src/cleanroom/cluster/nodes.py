"""The nodes of one clean room, as each reports itself in the database: its
name, address, live model, bus lag, heartbeat. ``cleanroom cluster status``
reads them; a node whose heartbeat is older than ``STALE_MS`` is shown down."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

from cleanroom.errors import ConfigError
from cleanroom.storage import Database, Migration, migrate
from cleanroom.storage.migrations import add_column

BEAT_S = 2.0
STALE_MS = 10_000

_meta = MetaData()
nodes_t = Table(
    "cluster_nodes",
    _meta,
    Column("name", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("url", String(255), nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("seen_ms", BigInteger, nullable=False),
    Column("info", Text, nullable=False),  # JSON: model version, bus lag, state store
    Column("stopped_ms", BigInteger, nullable=True),  # when it stopped on purpose
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


def _stopped(conn: Connection) -> None:
    add_column(conn, "cluster_nodes", "stopped_ms", "BIGINT")


MIGRATIONS = [
    Migration("cluster", 1, "the nodes and their heartbeats", _create),
    Migration("cluster", 2, "a node that stopped on purpose says so", _stopped),
]


def default_node_name() -> str:
    """This host and process, and a few random letters (two clean rooms in one
    process are two nodes)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def check_node_name(name: str) -> str:
    if not name or len(name) > 128 or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"node name must be 1-128 letters, digits, '-', '_' or '.', got {name!r}")
    return name


def check_bus_url(url: str) -> str:
    u = urlsplit(url)
    if u.scheme != "nats" or not u.hostname:
        raise ConfigError(f"bus URL must be nats://HOST:PORT, got {url!r}")
    return url


def check_state_url(url: str) -> str:
    u = urlsplit(url)
    if u.scheme not in ("redis", "rediss") or not u.hostname:
        raise ConfigError(f"state store URL must be redis://HOST:PORT/N, got {url!r}")
    if u.path.strip("/") and not u.path.strip("/").isdigit():
        raise ConfigError(f"the Redis database must be a number (redis://HOST:PORT/N), got {url!r}")
    return url


class Nodes:
    """The registry of nodes: each writes its heartbeat; anyone lists them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)

    def beat(self, name: str, url: str, info: dict[str, Any], started_ms: int) -> None:
        now = int(time.time() * 1000)
        row = {
            "name": name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "url": url,
            "started_ms": started_ms,
            "seen_ms": now,
            "info": json.dumps(info, sort_keys=True),
            "stopped_ms": None,  # (a name used again: up again)
        }
        with self.db.write() as conn:
            self.db.upsert(conn, nodes_t, ["name"], [row])

    def stopped(self, name: str) -> None:
        """A node that stopped on purpose says so (silent is for one that died)."""
        now = int(time.time() * 1000)
        with self.db.write() as conn:
            conn.execute(update(nodes_t).where(nodes_t.c.name == name).values(stopped_ms=now))

    def list(self) -> list[dict[str, Any]]:
        """Every node: ``up`` (a heartbeat within the last few seconds),
        ``state`` up, stopped (it said so at its end) or silent (it died, hangs
        or lost the database)."""
        now = int(time.time() * 1000)
        with self.db.read() as conn:
            rows = conn.execute(select(nodes_t).order_by(nodes_t.c.name)).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["info"] = json.loads(d["info"])
            d["age_ms"] = now - d["seen_ms"]
            d["up"] = d["age_ms"] <= STALE_MS and d["stopped_ms"] is None
            d["state"] = "up" if d["up"] else "stopped" if d["stopped_ms"] else "silent"
            out.append(d)
        return out


class Heartbeat:
    """A node's heartbeat: its report written every ``BEAT_S`` seconds in a thread."""

    def __init__(
        self, nodes: Nodes, name: str, url: str, report: Callable[[], dict[str, Any]]
    ) -> None:
        self.nodes, self.name, self.url, self.report = nodes, name, url, report
        self.started_ms = int(time.time() * 1000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        self.nodes.beat(self.name, self.url, self.report(), self.started_ms)

    def _run(self) -> None:
        while not self._stop.wait(BEAT_S):
            try:
                self.beat()
            except Exception:  # the database is away for a moment: the next beat says so
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(Exception):  # the database went first: it shows as silent
            self.nodes.stopped(self.name)
