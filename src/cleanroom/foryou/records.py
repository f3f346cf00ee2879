"""Served feeds' records: the inputs each feed is a function of, kept for
paging (cursors) and replay. ``FeedRecords`` is the role; ``MemoryRecords``
keeps the latest few thousand in the process (a bare engine, the embedded
default); the clean room's nodes share theirs in the database
(``cleanroom.cluster.records``), where any node finds any feed.

A record read back holds what was committed (inputs, pool by version, the
served list of videos) but not the computed ranking: a node that pages
through it recomputes it from those inputs (deterministic)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from cleanroom.foryou.pool import Boost, Pool

if TYPE_CHECKING:
    from cleanroom.foryou.engine import FeedRecord


class FeedRecords(Protocol):
    """Where served feeds' records are kept (this process, or every node's database)."""

    def put(self, record: FeedRecord) -> None: ...

    def get(self, feed: str) -> FeedRecord | None: ...

    def drop_user(self, user: str) -> int: ...


class MemoryRecords:
    """The latest ``keep`` records in this process."""

    def __init__(self, keep: int = 5_000) -> None:
        self.keep = keep
        self._records: OrderedDict[str, FeedRecord] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, record: FeedRecord) -> None:
        with self._lock:
            self._records[record.feed] = record
            while len(self._records) > self.keep:
                self._records.popitem(last=False)

    def get(self, feed: str) -> FeedRecord | None:
        with self._lock:
            return self._records.get(feed)

    def drop_user(self, user: str) -> int:
        with self._lock:
            gone = [f for f, r in self._records.items() if r.user == user]
            for f in gone:
                del self._records[f]
        return len(gone)

    def __len__(self) -> int:
        return len(self._records)


def pool_from_canonical(doc: dict[str, Any]) -> Pool:
    """A pool from its canonical form (what :meth:`Pool.canonical` wrote):
    identical to the pool written, version included."""
    boosts = tuple(Boost(**{**b, "regions": tuple(b["regions"])}) for b in doc["boosts"])
    pool = Pool(
        doc["bucket_ms"],
        doc["catalog_seq"],
        {k: [(v, s) for v, s in vs] for k, vs in doc["popular"].items()},
        {k: [(v, s) for v, s in vs] for k, vs in doc["rising"].items()},
        [(v, t) for v, t in doc["fresh"]],
        {k: dict(row) for k, row in doc["co"].items()},
        boosts,
    )
    return pool.sealed()
