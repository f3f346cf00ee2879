"""One access log line per request — and nothing a log must not keep.

The line names the route as declared (``/v1/users/{user_id}``), never the
path as sent (it holds user ids) nor the query (purposes, cursors), and no
header (tokens, cookies) nor the client's address: the method, the route, the
status, the time taken and the request id, which the response carries too
(``X-Request-Id``) so one request can be followed without naming anyone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("cleanroom.access")

Scope = dict[str, Any]


class AccessLog:
    """ASGI middleware: log each HTTP request on ``cleanroom.access`` (INFO)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "rid": "-"}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k == b"x-request-id":
                        seen["rid"] = v.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            where = getattr(route, "path", None) or "(no route)"
            ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %s %.1f ms rid=%s", scope["method"], where, seen["status"], ms,
                     seen["rid"])  # fmt: skip
