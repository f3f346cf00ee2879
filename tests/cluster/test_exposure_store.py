"""A node's exposure writes: absolute counts, only what changed, and a memory
of what it wrote that keeps to the hours that can still change."""

from __future__ import annotations

from pathlib import Path

from cleanroom.cluster.exposure import ExposureStore
from cleanroom.storage import Database

HOUR = 3_600_000


def _row(hour: int, video: str, n: int) -> dict:
    return {"model_version": "m", "ranking_config": "c", "hour_ms": hour * HOUR,
            "video": video, "impressions": n, "boosted_impressions": 0}  # fmt: skip


def test_writes_what_changed_and_forgets_hours_that_no_longer_change(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    store = ExposureStore(db)
    assert store.write("n1", [_row(h, "v", 1) for h in range(100)]) == 100
    assert store.write("n1", [_row(99, "v", 1)], since_ms=98 * HOUR) == 0  # unchanged
    assert len(store._written) == 2  # hours 98 and 99 only
    assert store.write("n1", [_row(99, "v", 3)], since_ms=98 * HOUR) == 1
    merged = {r["hour_ms"] // HOUR: r["impressions"] for r in store.merged()}
    assert len(merged) == 100 and merged[99] == 3 and merged[0] == 1  # kept in the database
    db.dispose()
