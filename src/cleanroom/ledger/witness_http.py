"""A C2SP tlog-witness over HTTP: POST /witness/add-checkpoint and the
monitoring checkpoint. Part of the ledger package so that the oversight
body's monitor can serve its own witness without the clean room's API."""

from __future__ import annotations

import re

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cleanroom.ledger.witness import Witness, WitnessError

MAX_BODY = 1 << 16


def problem(status: int, title: str, detail: str, instance: str | None = None) -> JSONResponse:
    """An RFC 9457 problem (the witness has no other error format)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def router() -> APIRouter:
    r = APIRouter(prefix="/witness", tags=["witness"])

    @r.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        """Cosign a checkpoint consistent with the last one this witness cosigned."""
        witness: Witness = request.app.state.witness
        body = await request.body()
        if len(body) > MAX_BODY:
            return problem(400, "Bad add-checkpoint request", "request body too large")
        try:
            lines = await anyio.to_thread.run_sync(witness.add_checkpoint, body)
        except WitnessError as exc:
            if exc.status == 409 and exc.size is not None:
                # Exactly this media type, no charset parameter (C2SP tlog-witness).
                return Response(
                    f"{exc.size}\n", status_code=409, headers={"Content-Type": "text/x.tlog.size"}
                )
            return problem(exc.status, exc.title, exc.message, request.url.path)
        return Response(lines, media_type="text/plain; charset=utf-8")

    @r.get("/{origin_hash}/checkpoint")
    def latest(request: Request, origin_hash: str) -> Response:
        """The latest checkpoint this witness cosigned for the log (by SHA-256 of origin)."""
        if not re.fullmatch(r"[0-9a-f]{64}", origin_hash):
            return problem(400, "Bad origin hash", "expected 64 lowercase hex digits")
        note = request.app.state.witness.latest(origin_hash)
        if note is None:
            return problem(404, "Not found", "this witness never cosigned for that log")
        return Response(note, media_type="text/plain; charset=utf-8")

    return r
