"""One page shape for every list the API returns.

``{"items": [...], "next_cursor": "…" | null, …}``: ask again with
``?cursor=<next_cursor>`` (and the same filters) until ``next_cursor`` is
null; ``limit`` sets the page size. A cursor is opaque (base64url JSON): the
position after the last item and that item's key, so a list that changed
under the reader is noticed (409) instead of silently skipping or repeating
items. The feed (``GET /v1/feed``) pages the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query

from cleanroom.errors import CleanroomError

Cursor = Annotated[
    str | None,
    Query(max_length=512, description="next_cursor of the previous page (opaque)"),
]
Limit = Annotated[int, Query(ge=1, le=10_000, description="items per page")]
DEFAULT_LIMIT = 1000


class BadCursor(CleanroomError):
    """A cursor that is not one this list handed out."""

    status = 400
    title = "Bad cursor"


class ListChanged(CleanroomError):
    """The list changed under the cursor: start again from the first page."""

    status = 409
    title = "The list changed"


def encode(doc: dict[str, Any]) -> str:
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this API gave out") from None
    if not isinstance(doc, dict):
        raise BadCursor("the cursor is not one this API gave out")
    return doc


def before_cursor(before: int | None) -> str | None:
    """The cursor of the page of a newest-first list that goes on below
    index ``before`` (None: there is no such page)."""
    return encode({"before": before}) if before is not None else None


def cursor_before(cursor: str) -> int:
    """The index a newest-first page's cursor goes on below."""
    before = decode(cursor).get("before")
    if type(before) is not int or not 0 <= before <= 2**53:
        raise BadCursor("the cursor is not one this API gave out")
    return before


def page(
    items: Sequence[Any],
    cursor: str | None,
    limit: int,
    key: Callable[[Any], Any],
    **extra: Any,
) -> dict[str, Any]:
    """The page of ``items`` (in their stable order) after ``cursor``."""
    start = 0
    if cursor is not None:
        c = decode(cursor)
        start, last = c.get("o"), c.get("k")
        if not isinstance(start, int) or start < 0:
            raise BadCursor("the cursor is not one this API gave out")
        if start > 0 and (start > len(items) or _key(key, items[start - 1]) != last):
            keys = [_key(key, x) for x in items]
            if last not in keys:
                raise ListChanged(
                    "the item this cursor stopped at is gone",
                    hint="start again without a cursor",
                )
            start = keys.index(last) + 1
    chunk = list(items[start : start + limit])
    end = start + len(chunk)
    nxt = encode({"o": end, "k": _key(key, chunk[-1])}) if chunk and end < len(items) else None
    return {"items": chunk, "next_cursor": nxt, **extra}


def _key(key: Callable[[Any], Any], item: Any) -> Any:
    """A JSON-comparable key (tuples become lists, as in a decoded cursor)."""
    return json.loads(json.dumps(key(item)))
