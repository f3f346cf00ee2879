"""The event bus the nodes share: NATS JetStream (``nats://HOST:PORT``)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from nats.errors import Error as NatsError


async def _quiet(_exc: Exception) -> None:
    """nats-py prints every connection error with its traceback; the caller
    reports them in one line instead."""


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
