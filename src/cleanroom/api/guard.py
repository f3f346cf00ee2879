"""The API's edge: every request body is capped and every JSON body is I-JSON.

One ASGI middleware in front of every route, so no route can forget it:

- a body larger than its route's cap is refused with 413 before it is read in
  full (the cap: :data:`CAPS` by path prefix, :data:`DEFAULT_CAP` otherwise);
- a JSON body must be I-JSON (RFC 7493): no ``NaN``/``Infinity``, no number
  that does not fit a double, no integer beyond ±2^53, no duplicate member
  names, valid UTF-8 without lone surrogates, and at most :data:`MAX_DEPTH` levels of nesting — else
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
    ("/v1/users", 16 * 1024 * 1024),  # a batch of users (POST /v1/users)
    ("/v1/ledger/entries", 70_000),
    ("/v1/releases", 256 * 1024),
    ("/witness/", 64 * 1024),
)
MAX_DEPTH = 32
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
MAX_SAFE_INTEGER = 2**53
STATE_KEY = "ijson_body"
NOT_PARSED = object()


class NotIJSON(ValueError):
    """A JSON text that is not I-JSON (RFC 7493), with the reason."""


def cap_for(path: str) -> int:
    return next((cap for prefix, cap in CAPS if path.startswith(prefix)), DEFAULT_CAP)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a name came twice: say which
        names = [k for k, _ in pairs]
        twice = next(k for k in names if names.count(k) > 1)
        raise NotIJSON(f"the member name {twice!r} appears twice in one object")
    return out


def _constant(name: str) -> Any:
    raise NotIJSON(f"{name} is not a JSON number (I-JSON has no NaN or Infinity)")


def _check_values(value: Any, strings: bool) -> None:
    """Numbers exact or finite, nesting at most MAX_DEPTH and — with ``strings``
    — no lone surrogate in a string or a name (one pass, no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise NotIJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        if strings and type(node) is dict:
            for k in node:
                _scalar_values(k)
        for v in node.values() if type(node) is dict else node:
            t = type(v)
            if strings and t is str:
                _scalar_values(v)
            elif t is dict or t is list:
                stack.append((v, depth + 1))
            elif t is int and not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                raise NotIJSON(f"the integer {str(v)[:40]} is beyond ±2^53 (not exact in I-JSON)")
            elif t is float and not math.isfinite(v):
                raise NotIJSON("a number does not fit a double")


def _scalar_values(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotIJSON("a string holds a lone surrogate (\\ud800-\\udfff unpaired)") from None


def check_ijson(body: bytes) -> Any:
    """The value of ``body`` if it is I-JSON, else :class:`NotIJSON`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotIJSON(f"the body is not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise NotIJSON(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise NotIJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    # a surrogate can only come from a \\u escape: strings are looked at if one is there
    strings = _SURROGATE_ESCAPE.search(text) is not None
    t = type(value)
    if t is dict or t is list:
        _check_values(value, strings)
    elif t is str and strings:
        _scalar_values(value)
    elif (t is int and abs(value) > MAX_SAFE_INTEGER) or (t is float and not math.isfinite(value)):
        raise NotIJSON("the number is not exact in I-JSON")
    return value


def parsed_body(request: Any) -> Any:
    """The JSON value the guard already parsed and checked for this request, or
    :data:`NOT_PARSED` (a body it left to the route: not JSON)."""
    return getattr(request.state, STATE_KEY, NOT_PARSED)


def _is_json(scope: Scope, body: bytes) -> bool:
    """Whether the routes may read ``body`` as JSON: a JSON media type, or a
    body that opens like JSON whatever its content type says (routes that read
    raw bodies parse those too). Text bodies (a C2SP add-checkpoint request)
    are left to their route."""
    if body.lstrip()[:1] in (b"{", b"["):
        return True
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            media = v.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


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
                value = check_ijson(body)
            except NotIJSON as e:
                await _refuse(scope, send, 422, "Invalid JSON", f"the body is not I-JSON: {e}")
                return
            scope.setdefault("state", {})[STATE_KEY] = value  # the route reads it, not again
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
