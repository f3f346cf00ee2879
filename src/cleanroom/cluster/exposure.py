"""Exposure counts of every node, merged by the database: each node writes
its own counts (impressions per model version, ranking configuration, hour
and video; aggregates, no user) as they stand, every few seconds; the
oversight report sums them over the nodes. Writing absolute counts, not
increments, makes a repeated write harmless.

A node is a process (its name is new at every start), so the counts of a
process that stopped stay in the sum: the report outlives a restart, in a
cluster and in the embedded default alike."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, func, select

from cleanroom.storage import Database, Migration, migrate

if TYPE_CHECKING:
    from cleanroom.foryou.engine import Engine

log = logging.getLogger(__name__)
WRITE_S = 1.0  # how often a node looks whether feeds were served, and writes
HOUR_MS = 3_600_000

_meta = MetaData()
exposure_t = Table(
    "foryou_exposure",
    _meta,
    Column("node", String(128), primary_key=True),
    Column("model_version", String(80), primary_key=True),
    Column("ranking_config", String(80), primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),
    Column("video", String(128), primary_key=True),
    Column("impressions", BigInteger, nullable=False),
    Column("boosted_impressions", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


MIGRATIONS = [Migration("exposure", 1, "impressions per node, model, hour and video", _create)]


class ExposureStore:
    """The nodes' exposure counts, merged."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)
        self._written: dict[tuple[str, str, int, str], tuple[int, int]] = {}

    def write(self, node: str, rows: list[dict[str, Any]], since_ms: int = 0) -> int:
        """This node's counts as they stand for the hours from ``since_ms``
        (only those that changed are written; what it remembers of earlier
        hours, which no longer change, is dropped)."""
        if since_ms:
            self._written = {k: v for k, v in self._written.items() if k[2] >= since_ms}
        changed = []
        for r in rows:
            key = (r["model_version"], r["ranking_config"], r["hour_ms"], r["video"])
            value = (r["impressions"], r["boosted_impressions"])
            if self._written.get(key) != value:
                changed.append((key, value))
        if changed:
            with self.db.write() as conn:
                self.db.upsert(
                    conn,
                    exposure_t,
                    ["node", "model_version", "ranking_config", "hour_ms", "video"],
                    [
                        {"node": node, "model_version": k[0], "ranking_config": k[1],
                         "hour_ms": k[2], "video": k[3], "impressions": v[0],
                         "boosted_impressions": v[1]}
                        for k, v in changed
                    ],
                )  # fmt: skip
            self._written.update(changed)
        return len(changed)

    def merged(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Every node's counts summed, per model version, configuration, hour and video."""
        e = exposure_t.c
        q = (
            select(
                e.model_version,
                e.ranking_config,
                e.hour_ms,
                e.video,
                func.sum(e.impressions).label("impressions"),
                func.sum(e.boosted_impressions).label("boosted_impressions"),
            )
            .where(e.hour_ms >= since_ms)
            .group_by(e.model_version, e.ranking_config, e.hour_ms, e.video)
        )
        with self.db.read() as conn:
            return [
                {**dict(r._mapping), "impressions": int(r.impressions),
                 "boosted_impressions": int(r.boosted_impressions)}
                for r in conn.execute(q)
            ]  # fmt: skip


class NodeExposure:
    """One node's exposure counts kept in the database: written within a
    second of a page served (a thread; nothing when no feed was served),
    before each report and at close; the report is every node's counts
    summed. A crash loses at most the last second."""

    def __init__(self, db: Database, node: str, engine: Engine) -> None:
        self.store = ExposureStore(db)
        self.node = node
        self.engine = engine
        self._first = True
        self._pages = 0  # the engine's pages_counted at the last write
        self._lock = threading.Lock()  # one write at a time (thread, report, close)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exposure-writer", daemon=True)

    def write(self) -> int:
        """This node's counts as they stand (the rows that changed); returns how many."""
        with self._lock:
            # every hour held the first time, then the hours that can still change
            since = 0 if self._first else int(self.engine.clock() * 1000) - 2 * HOUR_MS
            pages = self.engine.pages_counted
            n = self.store.write(self.node, self.engine.exposure_counts(since), since)
            self._pages = pages
            self._first = False
            return n

    def rows(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Every node's counts since ``since_ms`` summed (this node's written
        first), with each video's creator, region and topics."""
        self.write()
        return self.engine.describe_videos(self.store.merged(since_ms))

    def start(self) -> NodeExposure:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(WRITE_S):
            if self.engine.pages_counted == self._pages:
                continue  # no feed served since the last write
            try:
                self.write()
            except Exception:  # the database is away for a moment: the next write retries
                log.exception("node %s could not write its exposure counts", self.node)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        try:
            self.write()
        except Exception:  # the database is gone first: the last seconds are lost
            log.warning("node %s could not write its last exposure counts", self.node)
