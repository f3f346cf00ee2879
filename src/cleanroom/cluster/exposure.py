"""Exposure counts of every node, merged by the database: each node writes
its own counts (impressions per model version, ranking configuration, hour
and video; aggregates, no user) as they stand, every few seconds; the
oversight report sums them over the nodes. Writing absolute counts, not
increments, makes a repeated write harmless."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, func, select

from cleanroom.storage import Database, Migration, migrate

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

    def write(self, node: str, rows: list[dict[str, Any]]) -> int:
        """This node's counts as they stand (only those that changed are written)."""
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
