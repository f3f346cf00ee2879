"""The catalog and the candidate pool: the non-personal inputs of a feed.

The catalog is versioned by a sequence number (each upsert of a video is a
new version of it), so a feed computed against catalog version ``n`` can be
recomputed later even after videos were added or edited.

A ``Pool`` is an immutable snapshot of everything non-personal a feed reads
besides the model and the catalog: the popular and rising lists per region
and worldwide, the fresh uploads, the online co-engagement rows and the
declared boosts, at one time bucket. Its version is the digest of its
canonical form."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cleanroom.foryou.data import Item, json_digest
from cleanroom.foryou.online import WORLD, Counters


class Catalog:
    """Videos by id, each with its versions (sequence number, item), newest
    last. Compact, as a catalog may hold millions: a video with one version
    keeps a tuple, not a list; per creator only video ids (ordered by upload
    time); the fresh index only what is within ``fresh_window_ms`` of the
    newest upload (the fresh source never looks further back)."""

    def __init__(self, fresh_window_ms: int = 2 * 86_400_000) -> None:
        self._versions: dict[str, tuple[int, Item] | list[tuple[int, Item]]] = {}
        self._by_creator: dict[str, list[tuple[int, str]]] = {}  # (created_ms, video)
        self._fresh: list[tuple[int, str]] = []  # (created_ms, video), sorted
        self.fresh_window_ms = fresh_window_ms
        self.seq = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._versions)

    def _all(self, video: str) -> list[tuple[int, Item]]:
        vs = self._versions.get(video)
        if vs is None:
            return []
        return [vs] if isinstance(vs, tuple) else vs

    def upsert(self, items: list[Item]) -> None:
        with self._lock:
            creators: set[str] = set()
            fresh: list[tuple[int, str]] = []
            for it in items:
                old = self.get(it.id)
                if old == it:
                    continue
                self.seq += 1
                entry = (self.seq, it)
                if old is None:
                    self._versions[it.id] = entry
                else:
                    self._versions[it.id] = [*self._all(it.id), entry]
                if old is None or old.creator != it.creator or old.created_ms != it.created_ms:
                    self._by_creator.setdefault(it.creator, []).append((it.created_ms, it.id))
                    creators.add(it.creator)
                    fresh.append((it.created_ms, it.id))
            for c in creators:
                self._by_creator[c].sort()
            if fresh:
                merged = sorted(self._fresh + fresh)
                horizon = merged[-1][0] - self.fresh_window_ms
                self._fresh = merged[bisect.bisect_left(merged, (horizon, "")) :]

    @property
    def newest_upload_ms(self) -> int | None:
        """When the newest video was uploaded (None: no video yet)."""
        with self._lock:
            return self._fresh[-1][0] if self._fresh else None

    def get(self, video: str, at: int | None = None) -> Item | None:
        vs = self._versions.get(video)
        if vs is None:
            return None
        if isinstance(vs, tuple):
            return vs[1] if at is None or vs[0] <= at else None
        if at is None or vs[-1][0] <= at:
            return vs[-1][1]
        for seq, it in reversed(vs):
            if seq <= at:
                return it
        return None

    def present(self, videos: Iterable[str], at: int) -> list[tuple[str, Item]]:
        """(video, item) of each of ``videos`` in the catalogue as of ``at``, in
        order (one call for a feed's few hundred candidates)."""
        out: list[tuple[str, Item]] = []
        append = out.append
        videos = list(videos)
        for v, vs in zip(videos, map(self._versions.get, videos), strict=True):
            if vs is None:
                continue
            if vs.__class__ is tuple:
                if vs[0] <= at:
                    append((v, vs[1]))
            else:
                it = self.get(v, at)
                if it is not None:
                    append((v, it))
        return out

    def newest_of(self, creator: str, n: int, at: int) -> list[str]:
        out: list[str] = []
        for _, video in reversed(self._by_creator.get(creator, [])):
            it = self.get(video, at)
            if it is not None and it.creator == creator and video not in out:
                out.append(video)
                if len(out) >= n:
                    break
        return out

    def newest(self, n: int, since_ms: int, at: int) -> list[tuple[str, int]]:
        out = []
        for created, video in reversed(self._fresh):
            if created < since_ms:
                break
            it = self.get(video, at)
            if it is not None and it.created_ms == created and (video, created) not in out:
                out.append((video, created))
                if len(out) >= n:
                    break
        return out


@dataclass(frozen=True)
class Boost:
    """A declared boost: who asked, why, which video, how much, when."""

    id: str
    video: str
    factor: float  # added to the score
    label: str
    declared_by: str
    reason: str
    start_ms: int
    end_ms: int
    regions: tuple[str, ...] = ()

    def active(self, now_ms: int, region: str) -> bool:
        return self.start_ms <= now_ms < self.end_ms and (
            not self.regions or region in self.regions
        )


@dataclass(frozen=True)
class Pool:
    """The candidates shared by every user in one time bucket: popular, rising and fresh
    videos, co-engagement and active boosts."""

    bucket_ms: int
    catalog_seq: int
    popular: dict[str, list[tuple[str, float]]]
    rising: dict[str, list[tuple[str, float]]]
    fresh: list[tuple[str, int]]
    co: dict[str, dict[str, float]]
    boosts: tuple[Boost, ...] = ()
    version: str = field(default="", compare=False)

    def scores(self, kind: str, scope: str) -> dict[str, float]:
        """The ``popular`` or ``rising`` list of a scope as video -> score, in
        the list's order; built once per pool (every feed of the bucket reads
        it, none changes it)."""
        maps = self.__dict__.get("_maps")
        if maps is None:
            maps = {}
            object.__setattr__(self, "_maps", maps)
        out = maps.get((kind, scope))
        if out is None:
            out = maps[kind, scope] = dict(getattr(self, kind).get(scope, []))
        return out

    def canonical(self) -> dict[str, Any]:
        return {
            "bucket_ms": self.bucket_ms,
            "catalog_seq": self.catalog_seq,
            "popular": {
                k: [[v, round(s, 9)] for v, s in vs] for k, vs in sorted(self.popular.items())
            },
            "rising": {
                k: [[v, round(s, 9)] for v, s in vs] for k, vs in sorted(self.rising.items())
            },
            "fresh": [list(f) for f in self.fresh],
            "co": {k: sorted([v, c] for v, c in row.items()) for k, row in sorted(self.co.items())},
            "boosts": [b.__dict__ for b in self.boosts],
        }

    def sealed(self) -> Pool:
        """The same pool with its version computed from its content (values are
        rounded as in the canonical form, so a pool read back is identical)."""
        c = self.canonical()
        return Pool(
            self.bucket_ms,
            self.catalog_seq,
            {k: [(v, s) for v, s in vs] for k, vs in c["popular"].items()},
            {k: [(v, s) for v, s in vs] for k, vs in c["rising"].items()},
            [(v, t) for v, t in c["fresh"]],
            {k: dict(row) for k, row in c["co"].items()},
            self.boosts,
            json_digest(c),
        )


def horizon(now_ms: int, counters: Counters, catalog: Catalog, window_ms: int) -> int:
    """The time the windows of popularity, trends, freshness and inactivity
    end at: now while the data reaches into the last ``window_ms`` (a live
    platform); else the latest event or upload — a platform that loaded last
    year's history still has popular and fresh videos, and its users their
    states, measured at the data's own time."""
    latest = max(
        (t for t in (counters.last_ms, catalog.newest_upload_ms) if t is not None), default=None
    )
    if latest is None or latest >= now_ms - window_ms:
        return now_ms
    return latest


def snapshot(
    counters: Counters,
    catalog: Catalog,
    boosts: tuple[Boost, ...],
    bucket_ms: int,
    *,
    popular_n: int,
    rising_n: int,
    fresh_n: int,
    fresh_window_ms: int,
    horizon_ms: int | None = None,
) -> Pool:
    """The pool of one time bucket. Popularity, trends and freshness are
    measured at ``horizon_ms`` (the data's own time: see :func:`horizon`),
    the bucket's time by default."""
    at = bucket_ms if horizon_ms is None else horizon_ms
    popular, rising, co = counters.snapshot(popular_n, rising_n, at)
    popular.setdefault(WORLD, [])
    seq = catalog.seq
    fresh = catalog.newest(fresh_n, at - fresh_window_ms, seq)
    active = tuple(b for b in boosts if b.start_ms <= bucket_ms < b.end_ms)
    return Pool(bucket_ms, seq, popular, rising, fresh, co, active).sealed()
