"""The users' online states where every node reads and writes them: Redis.

Redis holds nothing that cannot be rebuilt: each state is the fold of the
user's stored events through a sequence number (``UserState.through``) and
the engine folds it again from the vault whenever it is missing. So Redis'
asynchronous replication, a failover or a flush cost time, never data.

One hash per user (``<prefix>st:<user>``): ``doc`` (the state as compact
JSON), ``through`` (its sequence number) and ``mode`` (the feed setting,
written on its own so that a change of setting and a fold of events never
overwrite each other). A state is written only if no state current through a
later event is stored (a script, atomic in Redis); it expires after the
engine's TTL.

Each node keeps the states it wrote or read last (``near``, a bounded LRU) and
asks Redis for a user's ``doc`` only when Redis holds a state through another
event than the one kept (a script answers ``through`` and ``mode``, and the
``doc`` only then): a node that wrote a state reads back a few bytes, not the
state, and decodes nothing."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis

from cleanroom.errors import ConfigError
from cleanroom.foryou.online import States, StateStore, UserState

_PUT = """
local t = redis.call('HGET', KEYS[1], 'through')
if t and tonumber(t) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'through', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# the state as stored, unless the caller holds it through the same event
# (ARGV[1]: the through it holds, '' for none): {through, mode[, doc]} or nil
_GET = """
local t = redis.call('HGET', KEYS[1], 'through')
if not t then return nil end
local mode = redis.call('HGET', KEYS[1], 'mode') or ''
if t == ARGV[1] then return {t, mode} end
return {t, mode, redis.call('HGET', KEYS[1], 'doc')}
"""
NEAR = 20_000  # states a node keeps (and reads again without their documents)
FORMAT = 3  # the stored document's layout (another: not this version's; folded again)


class RedisStates:
    """User states in Redis, shared by every node (a :class:`StateStore`)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cleanroom:",
        ttl_ms: int = 30 * 86_400_000,
        near: int = NEAR,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._scripts: tuple[str, str] | None = None  # (put, get) digests, once loaded
        self._near: OrderedDict[str, UserState] = OrderedDict()
        self._near_max = near
        self._lock = threading.Lock()
        self.evicted = 0  # (Redis expires and evicts on its own)
        self.expired = 0
        self.near_hits = 0

    def _key(self, user: str) -> str:
        return f"{self.prefix}st:{user}"

    def get(self, user: str) -> UserState | None:
        return self.get_many([user]).get(user)

    def put(self, state: UserState) -> bool:
        return self._write([state])[0]

    def get_many(self, users: list[str]) -> dict[str, UserState]:
        """Several users' states in one round trip (a copy each, to change)."""
        with self._lock:
            held = {u: st for u in users if (st := self._near.get(u)) is not None}

        def fill(pipe: Any, put: str, get: str) -> None:
            for user in users:
                st = held.get(user)
                pipe.evalsha(get, 1, self._key(user), st.through if st else "")

        out: dict[str, UserState] = {}
        for user, row in zip(users, self._pipeline(fill), strict=True):
            st = self._read(user, row, held.get(user))
            if st is not None:
                out[user] = st
        return out

    def _read(self, user: str, row: list[bytes] | None, held: UserState | None) -> UserState | None:
        if row is None:  # none stored (deleted, expired, flushed)
            self._forget(user)
            return None
        mode = row[1].decode() or None
        if len(row) == 2 and held is not None:  # the state kept here is current
            self.near_hits += 1
            st = held.copy()
        else:
            st = decode(row[2]) if len(row) > 2 and row[2] else None
            if st is None:
                self._forget(user)
                return None
            self._keep(st.copy())
        if mode is not None and mode != st.mode:
            st.mode = mode
            st.changed()
        return st

    def put_many(self, states: list[UserState]) -> None:
        """Several states in one round trip, each kept only if no state current
        through a later event is stored."""
        self._write(states)

    def _write(self, states: list[UserState]) -> list[bool]:
        if not states:
            return []
        docs = [encode(st) for st in states]

        def fill(pipe: Any, put: str, get: str) -> None:
            for st, doc in zip(states, docs, strict=True):
                pipe.evalsha(put, 1, self._key(st.user), doc, st.through, self.ttl_ms)

        written = [bool(x) for x in self._pipeline(fill)]
        for st, ok in zip(states, written, strict=True):
            if ok:  # (a state put is the store's: the caller changes it no more)
                self._keep(st)
            else:  # a later state is stored: read it next time
                self._forget(st.user)
        return written

    def _pipeline(self, fill: Callable[[Any, str, str], None]) -> list[Any]:
        """One round trip of script calls by digest (a pipeline of registered
        scripts would ask Redis whether it has them first, each time), the
        scripts loaded again if Redis lost them (a restart)."""
        for attempt in range(2):
            if self._scripts is None:
                self._scripts = (self.client.script_load(_PUT), self.client.script_load(_GET))
            pipe = self.client.pipeline(transaction=False)
            fill(pipe, *self._scripts)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                self._scripts = None
        raise AssertionError("unreachable")

    def _keep(self, st: UserState) -> None:
        with self._lock:
            self._near[st.user] = st
            self._near.move_to_end(st.user)
            while len(self._near) > self._near_max:
                self._near.popitem(last=False)

    def _forget(self, user: str) -> None:
        with self._lock:
            self._near.pop(user, None)

    def set_mode(self, user: str, mode: str, region: str) -> None:
        key = self._key(user)
        pipe = self.client.pipeline()
        pipe.hset(key, "mode", mode)
        pipe.pexpire(key, self.ttl_ms)
        pipe.execute()

    def drop(self, user: str) -> bool:
        self._forget(user)
        return bool(self.client.delete(self._key(user)))

    def user_ids(self, limit: int | None = None) -> list[str]:
        out: list[str] = []
        skip = len(self.prefix) + 3
        for key in self.client.scan_iter(match=f"{self.prefix}st:*", count=1000):
            out.append(key.decode()[skip:])
            if limit is not None and len(out) >= limit:
                break
        return out

    def expire(self, now_ms: int) -> int:
        return 0  # keys carry their own expiry

    def clear(self) -> int:
        """Drop every state under this prefix (what a flush of Redis does)."""
        with self._lock:
            self._near.clear()
        keys = list(self.client.scan_iter(match=f"{self.prefix}st:*", count=1000))
        return self.client.delete(*keys) if keys else 0

    def health(self) -> dict[str, Any]:
        try:
            info = self.client.info("server")
            return {"ok": True, "url": _safe(self.url), "redis": info.get("redis_version")}
        except redis.RedisError as exc:
            return {"ok": False, "url": _safe(self.url), "error": str(exc)}

    def __len__(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=f"{self.prefix}st:*", count=1000))

    def close(self) -> None:
        self.client.close()


def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (a clean room taken down); how many."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        return sum(client.delete(*keys[i : i + 5000]) for i in range(0, len(keys), 5000))
    finally:
        client.close()


def encode(st: UserState) -> bytes:
    """A state as stored: compact JSON (maps as objects, in their order)."""
    return orjson.dumps(
        {
            "f": FORMAT,
            "u": st.user,
            "r": st.region,
            "l": st.liked,
            "k": st.skipped,
            "s": st.seen,  # ({video: null}: decoded as the dict it is)
            "n": st.not_interested,
            "w": sorted(st.follows),
            "m": st.mode,
            "t": st.last_ms,
            "h": st.through,
        }
    )


def decode(doc: bytes) -> UserState | None:
    """A state as stored (None: another layout than this version's)."""
    d = orjson.loads(doc)
    if not isinstance(d, dict) or d.get("f") != FORMAT:
        return None
    st = UserState(d["u"], d["r"], d["l"], d["k"], d["s"], d["n"])
    if d["w"]:  # (else the one shared empty set)
        st.follows = frozenset(d["w"])
    st.mode, st.last_ms, st.through = d["m"], d["t"], d["h"]
    return st


def _safe(url: str) -> str:
    """The URL without a password."""
    u = urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{f':{u.port}' if u.port else ''}{u.path}"


def state_store(url: str | None, *, prefix: str = "cleanroom:") -> StateStore:
    """The state store a URL names: None for this process alone, ``redis://H:P/N``
    for Redis (shared by every node)."""
    if not url:
        return States()
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"state store URL must be redis://HOST:PORT/N, got {url!r}")
    return RedisStates(url, prefix=prefix)
