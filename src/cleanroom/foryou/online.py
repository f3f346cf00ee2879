"""Online state: what changes between trainings, event by event.

- ``UserState``: a user's recent history, what they have seen, what they
  marked not interested, whom they follow, their feed setting. Its digest is
  one of the inputs a feed is a function of. In a clean room it is the fold of
  the user's stored events in their order, current ``through`` a sequence
  number: rebuildable from the vault at any time (``History``).
- ``StateStore``: where the states live — ``States`` in the process, or a
  store every node shares (``cleanroom.cluster``).
- ``States``: the table of user states, bounded (least recently active users
  evicted beyond ``capacity``), with expiry of stale users and a frequency
  filter: an id gets state only once it has been seen ``admit_after`` times
  (Monolith's collisionless table with expirable embeddings and frequency
  filtering, in miniature).
- ``Counters``: decaying popularity per region and worldwide (a fast and a
  slow half-life, their ratio is "rising"), and co-engagement between videos
  liked one after the other, bounded per video and in the number of videos.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from cleanroom.foryou.data import json_digest
from cleanroom.foryou.signals import signal

HISTORY = 200
SEEN = 2000
WORLD = "*"


def _bounded_put(d: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """Put ``key`` last in ``d`` (dicts keep insertion order), dropping the
    oldest keys beyond ``limit``."""
    d.pop(key, None)
    d[key] = value
    while len(d) > limit:
        del d[next(iter(d))]


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Observed:
    """One event as the engine sees it."""

    user: str
    video: str
    kind: str
    ts_ms: int
    watch_ms: int = 0
    region: str = WORLD


@dataclass(slots=True)
class UserState:
    """What the engine keeps of a user: the videos they liked and skipped most
    recently (``HISTORY`` each, with times), what they have seen (``SEEN``),
    marked not interested, the creators they follow and their feed setting.

    Compact, as a million of them may be kept: slots, plain (ordered) dicts,
    and one shared empty set of follows until the user follows someone."""

    user: str
    region: str
    liked: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    seen: dict[str, None] = field(default_factory=dict)
    not_interested: dict[str, None] = field(default_factory=dict)
    follows: frozenset[str] = _NONE
    mode: str = "personalized"
    last_ms: int = 0
    through: int = 0  # the sequence number of the last of the user's events folded in
    version: int = field(default=0, compare=False)
    _snap: tuple[int, Any] | None = field(default=None, repr=False, compare=False)

    def changed(self) -> None:
        """Call after any change (the cached snapshot is dropped)."""
        self.version += 1

    def unfollow(self, creator: str) -> None:
        self.follows = self.follows - {creator}
        self.changed()

    def snapshot(self) -> tuple[UserState, dict[str, Any], str]:
        """An immutable copy, its document and its digest; computed once per
        version of the state (feeds between two events share it)."""
        if self._snap is None or self._snap[0] != self.version:
            doc = self.to_dict()
            self._snap = (self.version, (UserState.from_dict(doc), doc, json_digest(doc)))
        return self._snap[1]

    def observe(self, video: str, engagement: str, ts_ms: int, creator: str | None) -> None:
        s = signal(engagement)
        if s == "positive":
            _bounded_put(self.liked, video, ts_ms, HISTORY)
            self.skipped.pop(video, None)
        elif s == "negative" and video not in self.liked:
            _bounded_put(self.skipped, video, ts_ms, HISTORY)
        _bounded_put(self.seen, video, None, SEEN)
        if engagement == "not_interested":
            _bounded_put(self.not_interested, video, None, SEEN)
        if engagement == "follow" and creator:
            self.follows = self.follows | {creator}
        self.last_ms = max(self.last_ms, ts_ms)
        self.version += 1

    def copy(self) -> UserState:
        """A copy to change apart from this one (sharing this version's
        snapshot, which is immutable, until either changes)."""
        return UserState(
            self.user,
            self.region,
            dict(self.liked),
            dict(self.skipped),
            dict(self.seen),
            dict(self.not_interested),
            self.follows,
            self.mode,
            self.last_ms,
            self.through,
            self.version,
            self._snap,
        )

    def liked_and_skipped(self) -> tuple[list[str], list[str]]:
        """Liked and skipped videos, oldest first."""
        return list(self.liked), list(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "region": self.region,
            "liked": [[v, t] for v, t in self.liked.items()],
            "skipped": [[v, t] for v, t in self.skipped.items()],
            "seen": list(self.seen),
            "not_interested": list(self.not_interested),
            "follows": sorted(self.follows),
            "mode": self.mode,
            "last_ms": self.last_ms,
            "through": self.through,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserState:
        s = cls(d["user"], d["region"])
        s.liked = {v: int(t) for v, t in d["liked"]}
        s.skipped = {v: int(t) for v, t in d["skipped"]}
        s.seen = dict.fromkeys(d["seen"])
        s.not_interested = dict.fromkeys(d["not_interested"])
        s.follows = frozenset(d["follows"]) or _NONE
        s.mode = d["mode"]
        s.last_ms = int(d["last_ms"])
        s.through = int(d.get("through", 0))
        return s

    def digest(self) -> str:
        return json_digest(self.to_dict())


@dataclass(frozen=True)
class History:
    """A user's stored events in their order, what a state is the fold of:
    ``events`` are those after some sequence number, ``through`` the last one
    stored; and the feed setting the user chose (None: the default)."""

    through: int
    events: list[tuple[int, Observed]]
    mode: str | None = None
    exists: bool = True  # False: the store does not hold the user (deleted): keep no state


class StateStore(Protocol):
    """Where the users' online states live (one process, or shared by every node).

    ``get`` returns a state the caller may change and ``put`` back; ``put``
    keeps whichever state is current through the later event (two writers
    folding the same events write the same state). A state put is the
    store's: the caller reads it, but changes it no more."""

    # True: every node's (the engine folds copies and relies on ordered writes);
    # False: this process's, whose states are changed in place under a lock
    shared: bool

    def get(self, user: str) -> UserState | None: ...

    def put(self, state: UserState) -> bool: ...

    def get_many(self, users: list[str]) -> dict[str, UserState]: ...

    def put_many(self, states: list[UserState]) -> None: ...

    def set_mode(self, user: str, mode: str, region: str) -> None: ...

    def drop(self, user: str) -> bool: ...

    def user_ids(self, limit: int | None = None) -> list[str]: ...

    def expire(self, now_ms: int) -> int: ...

    def __len__(self) -> int: ...


class States:
    """User states in this process, bounded and expiring, with a frequency filter for new ids."""

    shared = False

    def __init__(
        self, *, capacity: int = 1_000_000, ttl_ms: int = 30 * 86_400_000, admit_after: int = 1
    ) -> None:
        self.capacity = capacity
        self.ttl_ms = ttl_ms
        self.admit_after = admit_after
        self._states: OrderedDict[str, UserState] = OrderedDict()
        self._pending: OrderedDict[str, int] = OrderedDict()  # frequency filter
        self._lock = threading.RLock()
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._states)

    def get(self, user: str) -> UserState | None:
        with self._lock:
            return self._states.get(user)

    def user_ids(self, limit: int | None = None) -> list[str]:
        with self._lock:
            return list(self._states)[:limit]

    def get_many(self, users: list[str]) -> dict[str, UserState]:
        with self._lock:
            return {u: s for u in users if (s := self._states.get(u)) is not None}

    def put_many(self, states: list[UserState]) -> None:
        for st in states:
            self.put(st)

    def admit(self, user: str, region: str) -> UserState | None:
        """The user's state, created once the user has been seen often enough."""
        with self._lock:
            s = self._states.get(user)
            if s is not None:
                self._states.move_to_end(user)
                return s
            n = self._pending.pop(user, 0) + 1
            if n < self.admit_after:
                self._pending[user] = n
                while len(self._pending) > self.capacity:
                    self._pending.popitem(last=False)
                return None
            s = self._states[user] = UserState(user, region)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
                self.evicted += 1
            return s

    def put(self, state: UserState) -> bool:
        with self._lock:
            held = self._states.get(state.user)
            if held is not None and held is not state and held.through > state.through:
                return False
            self._states[state.user] = state
            self._states.move_to_end(state.user)
            return True

    def set_mode(self, user: str, mode: str, region: str) -> None:
        with self._lock:
            st = self._states.get(user) or UserState(user, region)
            st.mode = mode
            st.changed()
            self.put(st)

    def drop(self, user: str) -> bool:
        with self._lock:
            self._pending.pop(user, None)
            return self._states.pop(user, None) is not None

    def expire(self, now_ms: int) -> int:
        """Drop users inactive for longer than the TTL (oldest first)."""
        n = 0
        with self._lock:
            while self._states:
                s = next(iter(self._states.values()))
                if now_ms - s.last_ms <= self.ttl_ms:
                    break
                self._states.popitem(last=False)
                n += 1
        self.expired += n
        return n


class Decaying:
    """Exponentially decaying counts per key: value halves every ``half_life_ms``."""

    __slots__ = ("_v", "half_life_ms")

    def __init__(self, half_life_ms: int) -> None:
        self.half_life_ms = half_life_ms
        self._v: dict[str, tuple[float, int]] = {}

    def add(self, key: str, ts_ms: int, amount: float = 1.0) -> None:
        v, t = self._v.get(key, (0.0, ts_ms))
        if ts_ms >= t:
            v = v * 0.5 ** ((ts_ms - t) / self.half_life_ms) + amount
            t = ts_ms
        else:  # a late event: decay it to the counter's time
            v += amount * 0.5 ** ((t - ts_ms) / self.half_life_ms)
        self._v[key] = (v, t)

    def value(self, key: str, now_ms: int) -> float:
        v, t = self._v.get(key, (0.0, now_ms))
        return v * 0.5 ** (max(0, now_ms - t) / self.half_life_ms)

    def top(self, n: int, now_ms: int) -> list[tuple[str, float]]:
        # the decay factor is monotone in age, so rank on the decayed value
        return heapq.nlargest(
            n,
            (
                (k, v * 0.5 ** (max(0, now_ms - t) / self.half_life_ms))
                for k, (v, t) in self._v.items()
            ),
            key=lambda kv: (kv[1], kv[0]),
        )

    def prune(self, now_ms: int, floor: float = 0.01) -> int:
        gone = [k for k in self._v if self.value(k, now_ms) < floor]
        for k in gone:
            del self._v[k]
        return len(gone)

    def remove(self, key: str, ts_ms: int, amount: float = 1.0) -> None:
        if key in self._v:
            self.add(key, ts_ms, -amount)

    def __len__(self) -> int:
        return len(self._v)


class Counters:
    """Popularity (per region and worldwide) and co-engagement, online."""

    def __init__(
        self,
        *,
        slow_half_life_ms: int = 7 * 86_400_000,
        fast_half_life_ms: int = 3_600_000,
        co_items: int = 5000,
        co_neighbours: int = 20,
    ) -> None:
        self.slow: dict[str, Decaying] = {}
        self.fast: dict[str, Decaying] = {}
        self._slow_hl, self._fast_hl = slow_half_life_ms, fast_half_life_ms
        self.co: OrderedDict[str, dict[str, float]] = OrderedDict()
        self.co_items, self.co_neighbours = co_items, co_neighbours
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change
        self.first_ms: int | None = None  # the time span seen: "rising" needs one
        self.last_ms: int | None = None

    def _scopes(self, region: str) -> tuple[str, ...]:
        return (WORLD, region) if region != WORLD else (WORLD,)

    def positive(self, video: str, region: str, ts_ms: int, previous: list[str]) -> None:
        """Count a positive engagement; ``previous`` are the user's recent likes."""
        with self._lock:
            self.first_ms = ts_ms if self.first_ms is None else min(self.first_ms, ts_ms)
            self.last_ms = ts_ms if self.last_ms is None else max(self.last_ms, ts_ms)
            for scope in self._scopes(region):
                self.slow.setdefault(scope, Decaying(self._slow_hl)).add(video, ts_ms)
                self.fast.setdefault(scope, Decaying(self._fast_hl)).add(video, ts_ms)
            for other in previous:
                if other != video:
                    self._co(video, other)
                    self._co(other, video)
            self.version += 1

    def _co(self, a: str, b: str) -> None:
        row = self.co.get(a)
        if row is None:
            row = self.co[a] = {}
            while len(self.co) > self.co_items:
                self.co.popitem(last=False)
        else:
            self.co.move_to_end(a)
        row = dict(row)  # copy on write: snapshots keep the old row
        row[b] = row.get(b, 0.0) + 1.0
        if len(row) > self.co_neighbours:
            del row[min(row, key=lambda k: (row[k], k))]
        self.co[a] = row

    def forget_positive(self, video: str, region: str, ts_ms: int) -> None:
        with self._lock:
            for scope in self._scopes(region):
                if scope in self.slow:
                    self.slow[scope].remove(video, ts_ms)
                    self.fast[scope].remove(video, ts_ms)
            self.version += 1

    def prune(self, now_ms: int) -> int:
        with self._lock:
            n = sum(d.prune(now_ms) for d in (*self.slow.values(), *self.fast.values()))
            if n:
                self.version += 1
            return n

    def snapshot(
        self, popular_n: int, rising_n: int, now_ms: int
    ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, list[tuple[str, float]]], dict]:
        """Popular and rising lists per scope and the co-engagement rows, as of
        one moment (the rows are copy-on-write, so a shallow copy is a snapshot)."""
        with self._lock:
            scopes = sorted(self.slow)
            popular = {s: self.slow[s].top(popular_n, now_ms) for s in scopes}
            rising = {s: self.rising(s, rising_n, now_ms) for s in scopes}
            return popular, rising, dict(self.co)

    def rising(self, scope: str, n: int, now_ms: int) -> list[tuple[str, float]]:
        """Videos whose last hour is strong against their usual level (nothing
        until the counters have seen at least an hour of events: without time
        there is no trend)."""
        fast, slow = self.fast.get(scope), self.slow.get(scope)
        if fast is None or slow is None or self.first_ms is None or self.last_ms is None:
            return []
        if self.last_ms - self.first_ms < self._fast_hl:
            return []
        ratio = self._fast_hl / self._slow_hl
        out = []
        for k, f in fast.top(max(n * 4, n), now_ms):
            s = slow.value(k, now_ms)
            out.append((k, math.log((f + 1.0) / (s * ratio + 1.0))))
        out.sort(key=lambda kv: (-kv[1], kv[0]))
        return [kv for kv in out[:n] if kv[1] > 0]
