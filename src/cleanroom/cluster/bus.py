"""The event bus the nodes share: what one node did that the others must
follow (events stored, videos registered, users deleted, tokens revoked,
models published), each message to every node, in one order.

- ``NatsBus``: NATS JetStream (``nats://HOST:PORT``). One stream per clean
  room; each node reads it through its own durable consumer, so a node that
  was stopped catches up from where it left off. Messages carry ids only (no
  personal data, nothing that is not also in the database): JetStream is
  never the only copy of anything acknowledged — the database is, and the
  outbox republishes what the stream did not acknowledge.
- ``MemoryBus``: the same in one process (``memory://NAME``; the embedded
  default has one node, and tests run several nodes in one process on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import nats
import orjson
from nats.errors import Error as NatsError
from nats.js import api

from cleanroom.errors import CleanroomError, ConfigError

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], None]


class BusError(CleanroomError):
    """The bus did not acknowledge a message (the outbox will send it again)."""

    status = 503
    title = "Event bus unavailable"


class Bus(Protocol):
    """Messages to every node, in one order."""

    node: str

    def publish(self, kind: str, payload: dict[str, Any], msg_id: str) -> None: ...

    def follow(self, handler: Handler) -> None: ...

    def lag(self) -> int | None: ...

    def close(self) -> None: ...


class MemoryBus:
    """A bus inside one process: every follower of the same name gets every message."""

    _topics: ClassVar[dict[str, Any]] = {}  # name -> _Topic
    _topics_lock = threading.Lock()

    class _Topic:
        def __init__(self) -> None:
            self.lock = threading.RLock()
            self.followers: list[Handler] = []
            self.seen: set[str] = set()

    def __init__(self, name: str, node: str) -> None:
        self.node = node
        with MemoryBus._topics_lock:
            self._topic = MemoryBus._topics.setdefault(name, MemoryBus._Topic())
        self._mine: list[Handler] = []

    def publish(self, kind: str, payload: dict[str, Any], msg_id: str) -> None:
        msg = {"kind": kind, "node": self.node, "id": msg_id, **payload}
        with self._topic.lock:
            if msg_id in self._topic.seen:  # (the stream's de-duplication)
                return
            self._topic.seen.add(msg_id)
            followers = list(self._topic.followers)
        for handler in followers:
            handler(msg)

    def follow(self, handler: Handler) -> None:
        with self._topic.lock:
            self._topic.followers.append(handler)
        self._mine.append(handler)

    def lag(self) -> int | None:
        return 0

    def close(self) -> None:
        with self._topic.lock:
            for h in self._mine:
                if h in self._topic.followers:
                    self._topic.followers.remove(h)


async def _quiet(_exc: Exception) -> None:
    """nats-py prints every connection error with its traceback; callers
    report them in one line instead."""


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


class NatsBus:
    """The bus on NATS JetStream: one stream per clean room, a durable consumer per node."""

    def __init__(self, url: str, node: str, *, name: str, timeout: float = 5.0) -> None:
        self.url, self.node, self.timeout = url, node, timeout
        self.stream = f"CLEANROOM_{_token(name)}"
        self.subject = f"cleanroom.{_token(name)}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bus", daemon=True)
        self._thread.start()
        self._lag: int | None = None
        self._followers: list[asyncio.Task[None]] = []
        self._closing = False
        try:
            self._call(self._connect())
        except Exception:
            self.close()
            raise

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout or self.timeout * 2)
        except (NatsError, OSError, TimeoutError) as exc:
            fut.cancel()
            why = str(exc) or type(exc).__name__
            raise BusError(f"the event bus at {self.url} did not answer: {why}") from None

    async def _connect(self) -> None:
        self.nc = await nats.connect(
            self.url,
            connect_timeout=self.timeout,
            error_cb=_quiet,
            max_reconnect_attempts=-1,  # ride out a restart of the server
            reconnect_time_wait=0.5,
        )
        self.js = self.nc.jetstream(timeout=self.timeout)
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject}.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,  # a republished message (same id) is stored once
        )
        try:
            await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)

    def publish(self, kind: str, payload: dict[str, Any], msg_id: str) -> None:
        if not self.nc.is_connected:  # (nats-py would hold it until it reconnects)
            raise BusError(f"the event bus at {self.url} is not connected")
        body = orjson.dumps({"kind": kind, "node": self.node, "id": msg_id, **payload})
        headers = {"Nats-Msg-Id": msg_id}
        self._call(self.js.publish(f"{self.subject}.{kind}", body, headers=headers))

    def follow(self, handler: Handler) -> None:
        """Every message, in the stream's order, through this node's durable
        consumer (from where it last acknowledged); each acknowledged once
        ``handler`` returned (a handler that raises gets it again)."""
        self._call(self._follow(handler))

    async def _follow(self, handler: Handler) -> None:
        durable = _token(self.node)
        sub = await self.js.pull_subscribe(
            f"{self.subject}.>",
            durable=durable,
            stream=self.stream,
            config=api.ConsumerConfig(ack_wait=30, max_deliver=-1),
        )
        self._followers.append(self._loop.create_task(self._pull(sub, handler)))

    async def _pull(self, sub: Any, handler: Handler) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                msgs = await sub.fetch(100, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                msgs = []
            except NatsError as exc:  # the server restarts: try again shortly
                if self._closing:
                    return
                log.warning("bus: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for m in msgs:
                try:
                    await loop.run_in_executor(None, handler, orjson.loads(m.data))
                except Exception:
                    log.exception("bus: handling a message failed; it will come again")
                    await m.nak(delay=1.0)
                    break
                await m.ack()
            try:
                info = await sub.consumer_info()
                self._lag = info.num_pending  # not yet delivered to this node
            except NatsError:
                self._lag = None

    def lag(self) -> int | None:
        return self._lag

    def close(self) -> None:
        self._closing = True

        async def stop() -> None:
            for t in self._followers:
                t.cancel()
            nc = getattr(self, "nc", None)
            if nc is not None and not nc.is_closed:
                await nc.close()

        with contextlib.suppress(Exception):  # closing anyway
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(self.timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)


def open_bus(url: str | None, node: str, *, name: str) -> Bus:
    """The bus a URL names: None for this process alone (a bus of one node),
    ``memory://NAME`` for several nodes in one process, ``nats://H:P`` for NATS."""
    if not url:
        return MemoryBus(f"process:{name}:{node}", node)
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus(f"{url}:{name}", node)
    if scheme != "nats":
        raise ConfigError(f"bus URL must be nats://HOST:PORT, got {url!r}")
    return NatsBus(url, node, name=name)


def drop_stream(url: str, name: str) -> bool:
    """Delete a clean room's stream (a clean room taken down); whether it existed."""

    async def drop() -> bool:
        nc = await nats.connect(url, allow_reconnect=False, error_cb=_quiet)
        try:
            return await nc.jetstream().delete_stream(f"CLEANROOM_{_token(name)}")
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()

    return asyncio.run(drop())


def bus_health(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """Whether the bus answers, and its JetStream account's streams."""

    async def probe() -> dict[str, Any]:
        nc = await nats.connect(
            url, connect_timeout=timeout, allow_reconnect=False, error_cb=_quiet
        )
        try:
            info = await nc.jetstream().account_info()
            return {"ok": True, "url": url, "streams": info.streams}
        finally:
            await nc.close()

    try:
        return asyncio.run(asyncio.wait_for(probe(), timeout * 2))
    except TimeoutError:
        return {"ok": False, "url": url, "error": f"no answer within {timeout * 2:.0f} s"}
    except (NatsError, OSError) as exc:
        return {"ok": False, "url": url, "error": f"{type(exc).__name__}: {exc}"}
