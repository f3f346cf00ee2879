"""The users' online states where every node reads and writes them: Redis.

Redis holds nothing that cannot be rebuilt: each state is the fold of the
user's stored events through a sequence number (``UserState.through``) and
the engine folds it again from the vault whenever it is missing. So Redis'
asynchronous replication, a failover or a flush cost time, never data.

One hash per user (``<prefix>st:<user>``): ``doc`` (the state as JSON),
``through`` (its sequence number) and ``mode`` (the feed setting, written on
its own so that a change of setting and a fold of events never overwrite each
other). A state is written only if no state current through a later event is
stored (a script, atomic in Redis); it expires after the engine's TTL."""

from __future__ import annotations

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


class RedisStates:
    """User states in Redis, shared by every node (a :class:`StateStore`)."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "cleanroom:", ttl_ms: int = 30 * 86_400_000):
        self.url = url
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._put = self.client.register_script(_PUT)
        self.evicted = 0  # (Redis expires and evicts on its own)
        self.expired = 0

    def _key(self, user: str) -> str:
        return f"{self.prefix}st:{user}"

    def get(self, user: str) -> UserState | None:
        return _state(*self.client.hmget(self._key(user), "doc", "mode"))

    def put(self, state: UserState) -> bool:
        doc = orjson.dumps(state.to_dict())
        return bool(self._put(keys=[self._key(state.user)], args=[doc, state.through, self.ttl_ms]))

    def get_many(self, users: list[str]) -> dict[str, UserState]:
        """Several users' states in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.hmget(self._key(user), "doc", "mode")
        found = zip(users, pipe.execute(), strict=True)
        return {user: st for user, row in found if (st := _state(*row)) is not None}

    def put_many(self, states: list[UserState]) -> None:
        """Several states in one round trip (each kept only if current through a later event)."""
        if not states:
            return
        pipe = self.client.pipeline(transaction=False)
        for st in states:
            doc = orjson.dumps(st.to_dict())
            self._put(keys=[self._key(st.user)], args=[doc, st.through, self.ttl_ms], client=pipe)
        pipe.execute()

    def set_mode(self, user: str, mode: str, region: str) -> None:
        key = self._key(user)
        pipe = self.client.pipeline()
        pipe.hset(key, "mode", mode)
        pipe.pexpire(key, self.ttl_ms)
        pipe.execute()

    def drop(self, user: str) -> bool:
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


def _state(doc: bytes | None, mode: bytes | None) -> UserState | None:
    """A state as stored (its feed setting, written on its own, over it)."""
    if doc is None:
        return None
    st = UserState.from_dict(orjson.loads(doc))
    if mode is not None:
        st.mode = mode.decode()
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
