"""The public log (C2SP tlog-tiles under /log/) and the ledger API under /v1/ledger."""

from __future__ import annotations

import gzip
import json
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cleanroom.api import models as answers
from cleanroom.api.auth import Who
from cleanroom.api.guard import NOT_PARSED, parsed_body
from cleanroom.api.pages import Cursor, before_cursor, cursor_before
from cleanroom.ledger.entries import (
    RESERVED_NAMESPACES,
    encode_entry,
    parse_entry_json,
    reserved_type,
)
from cleanroom.ledger.errors import ReservedTypeError
from cleanroom.ledger.hashing import b64, leaf_hash
from cleanroom.ledger.log import Log
from cleanroom.ledger.search import MAX_PAGE, search_page
from cleanroom.ledger.search import Query as SearchQuery
from cleanroom.ledger.tiles import parse_tile_path
from cleanroom.ledger.tlogproof import TlogProof

IMMUTABLE = "public, max-age=31536000, immutable"
MAX_INDEX = 2**53  # beyond any log (and beyond what a database integer holds)


def _log(request: Request) -> Log:
    return request.app.state.log


router = APIRouter()


@router.get("/log/checkpoint", tags=["log"], response_class=PlainTextResponse)
def checkpoint(request: Request) -> Response:
    """The latest signed checkpoint (C2SP tlog-checkpoint), with cosignatures."""
    note = _log(request).store.latest().note
    return Response(
        note,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache, max-age=1"},
    )


@router.get(
    "/log/tile/{path:path}",
    tags=["log"],
    response_class=Response,
    responses={
        200: {
            "description": "a hash tile or an entry bundle (C2SP tlog-tiles)",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
def tile(request: Request, path: str) -> Response:
    """Hash tiles ``/log/tile/<L>/<N>[.p/<W>]`` and entry bundles
    ``/log/tile/entries/<N>[.p/<W>]`` (C2SP tlog-tiles)."""
    ref = parse_tile_path("tile/" + path)
    store = _log(request).store
    data = (
        store.bundle(ref.index, ref.width)
        if ref.is_bundle
        else store.tile(ref.level, ref.index, ref.width)
    )
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    if ref.is_bundle and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.post(
    "/v1/ledger/entries", tags=["ledger"], status_code=201, response_model=answers.Appended
)
async def append(
    request: Request,
    who: Who,
    wait: Annotated[bool, Query(description="wait until a checkpoint includes it")] = False,
) -> JSONResponse:
    """Append one entry (a JSON object with ``type`` and ``v``); durable on return.
    Types the clean room's components write (``access``, ``release.*``,
    ``boost.*``, ``deletion.*`` …) are reserved: 403."""
    doc = parsed_body(request)  # capped and I-JSON at the edge (api.guard)
    body = parse_entry_json(await request.body()) if doc is NOT_PARSED else encode_entry(doc)
    gate = request.app.state.room.gate
    gate.check_ledger_write(who)
    etype = json.loads(body)["type"]
    if reserved_type(etype):
        raise ReservedTypeError(
            f"entry type {etype!r} is reserved: only the clean room's own components "
            f"write {etype.split('.', 1)[0]!r} entries",
            hint="name your entries in a namespace of your own, e.g. 'ops.note'; reserved: "
            + ", ".join(RESERVED_NAMESPACES),
        )
    log = _log(request)
    index = await log.append_body_async(body)
    out: dict[str, object] = {"index": index, "leaf_hash": b64(leaf_hash(body))}
    if wait:
        cp = await anyio.to_thread.run_sync(log.wait_for, index)
        out["checkpoint_size"] = cp.size
    return JSONResponse(out, status_code=201)


TypeFilter = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$",
        description="an entry type, or a namespace ending in .* (access.* finds access and "
        "access.limited)",
    ),
]
TimeMs = Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="milliseconds since epoch")]


@router.get("/v1/ledger/entries", tags=["ledger"], response_model=answers.LedgerSearch)
def search_entries(
    request: Request,
    type: TypeFilter = None,
    since_ms: TimeMs = None,
    until_ms: TimeMs = None,
    principal: Annotated[
        str | None, Query(max_length=200, description="the principal an entry names")
    ] = None,
    subject: Annotated[
        str | None,
        Query(max_length=100, description="a subject commitment the entry lists"),
    ] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="entries per page")] = 50,
    proofs: Annotated[bool, Query(description="each entry's inclusion proof")] = False,
) -> JSONResponse:
    """Entries by type, time range, principal or subject commitment, newest
    first, only those the latest checkpoint covers (each provable against it).
    Ask again with ``cursor=next_cursor`` and the same filters for older ones."""
    after = cursor_before(cursor) if cursor else None
    q = SearchQuery(type, since_ms, until_ms, principal, subject, after, limit)
    out = search_page(_log(request).store, q, proofs)
    before = out.pop("before")
    out["next_cursor"] = before_cursor(before)
    return JSONResponse(out)


@router.get("/v1/ledger/entries/{index}", tags=["ledger"], response_model=answers.LedgerEntry)
def get_entry(
    request: Request, index: Annotated[int, Path(le=MAX_INDEX, description="entry index")]
) -> JSONResponse:
    """One entry by index, with its leaf hash."""
    body = _log(request).store.entry(index)
    return JSONResponse(
        {"index": index, "leaf_hash": b64(leaf_hash(body)), "entry": json.loads(body)}
    )


@router.get("/v1/ledger/proofs/inclusion", tags=["ledger"], response_class=PlainTextResponse)
def inclusion(
    request: Request,
    index: Annotated[int, Query(ge=0, le=MAX_INDEX)],
    size: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
) -> Response:
    """A C2SP tlog-proof of entry ``index`` in the checkpoint at ``size`` (default latest)."""
    store = _log(request).store
    cp = store.latest() if size is None else store.checkpoint_at(size)
    proof = store.inclusion_proof(index, cp.size)
    text = TlogProof(index, proof, cp.note).render()
    return Response(text, media_type="text/plain; charset=utf-8")


@router.get("/v1/ledger/proofs/consistency", tags=["ledger"], response_model=answers.Consistency)
def consistency(
    request: Request,
    old: Annotated[int, Query(ge=0, le=MAX_INDEX)],
    new: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
) -> JSONResponse:
    """An RFC 9162 consistency proof between two tree sizes."""
    store = _log(request).store
    new_size = store.latest().size if new is None else new
    proof = store.consistency_proof(old, new_size)
    return JSONResponse({"old": old, "new": new_size, "proof": [b64(p) for p in proof]})
