"""The API's edge: every request body is capped and every JSON body is I-JSON.

One ASGI middleware in front of every route, so no route can forget it:

- a body larger than its route's cap is refused with 413 before it is read in
  full (the cap: :data:`CAPS` by path prefix, :data:`DEFAULT_CAP` otherwise);
- a JSON body must be I-JSON (RFC 7493): no ``NaN``/``Infinity``, no number
  that does not fit a double, no integer beyond ±2^53, no duplicate member
  names, valid UTF-8, and at most :data:`MAX_DEPTH` levels of nesting — else
  422. A value that would be stored and later break a reader (one ``NaN`` in an
  event's context made a user's export answer 500 forever) never gets in.

Refusals are problem+json and happen before any route runs, so nothing is
stored by a refused request.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cleanroom.api.problems import problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_CAP = 1024 * 1024
# Bulk ingest carries up to 10,000 records per request; a ledger entry fits an
# entry bundle; a policy or model release is a few text files.
CAPS = (
    ("/v1/events", 16 * 1024 * 1024),
    ("/v1/videos", 16 * 1024 * 1024),
    ("/v1/ledger/entries", 70_000),
    ("/v1/releases", 256 * 1024),
    ("/witness/", 64 * 1024),
)
MAX_DEPTH = 32
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
MAX_SAFE_INTEGER = 2**53


class NotIJSON(ValueError):
    """A JSON text that is not I-JSON (RFC 7493), with the reason."""


def cap_for(path: str) -> int:
    return next((cap for prefix, cap in CAPS if path.startswith(prefix)), DEFAULT_CAP)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise NotIJSON(f"the member name {k!r} appears twice in one object")
        out[k] = v
    return out


def _constant(name: str) -> Any:
    raise NotIJSON(f"{name} is not a JSON number (I-JSON has no NaN or Infinity)")


def _integer(text: str) -> int:
    n = int(text)
    if abs(n) > MAX_SAFE_INTEGER:
        raise NotIJSON(f"the integer {text[:40]} is beyond ±2^53 (not exact in I-JSON)")
    return n


def _float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise NotIJSON(f"the number {text[:40]} does not fit a double")
    return x


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def check_ijson(body: bytes) -> Any:
    """The value of ``body`` if it is I-JSON, else :class:`NotIJSON`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotIJSON(f"the body is not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_constant,
            parse_int=_integer,
            parse_float=_float,
        )
    except NotIJSON:
        raise
    except json.JSONDecodeError as e:
        raise NotIJSON(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise NotIJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise NotIJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _is_json(scope: Scope, body: bytes) -> bool:
    """Whether the routes will read ``body`` as JSON: a JSON media type, or no
    content type and a body that opens like JSON (the routes parse those too).
    Text bodies (a C2SP add-checkpoint request) are left to their route."""
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            media = v.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return body.lstrip()[:1] in (b"{", b"[")


class InputGuard:
    """ASGI middleware: body caps and I-JSON on every route (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_request_id(scope, send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path, cap = scope["path"], cap_for(scope["path"])
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        too_large = f"the request body exceeds {cap:,} bytes, the limit of {path}"
        if length is not None and length.isdigit() and int(length) > cap:
            await _refuse(scope, send, 413, "Payload too large", too_large)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _refuse(scope, send, 413, "Payload too large", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip() and _is_json(scope, body):
            try:
                check_ijson(body)
            except NotIJSON as e:
                await _refuse(scope, send, 422, "Invalid JSON", f"the body is not I-JSON: {e}")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _with_request_id(scope: Scope, send: Send) -> Send:
    """Every response carries ``X-Request-Id``: the caller's (if it is a short
    token of letters, digits, ``.``, ``_``, ``-``) or a new one."""
    given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"")
    rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex.encode()

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []),
                                             (b"x-request-id", rid)]}  # fmt: skip
        await send(message)

    return sending


async def _refuse(scope: Scope, send: Send, status: int, title: str, detail: str) -> None:
    resp = problem(status, title, detail, scope["path"])
    await resp(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
