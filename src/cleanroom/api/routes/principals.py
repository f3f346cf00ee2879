"""Principals and their API tokens over HTTP: who holds live tokens (the
operator's and the oversight body's staff read it) and revoking them (the
operator's staff: a leaked token, a person who left). The gate decides each
(resource class ``Tokens``); a revocation is a ``principal.tokens_revoked``
ledger entry committed with it. Tokens are issued on the operator's machine
(``cleanroom principal token``), never over the network."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, room_of
from cleanroom.api.pages import DEFAULT_LIMIT, Cursor, Limit, page
from cleanroom.gate.principals import TOKEN_ID


class RevocationBody(BaseModel):
    """Which of the principal's tokens to revoke (all when none is named), and why."""

    model_config = ConfigDict(extra="forbid")

    token: Annotated[
        str | None, Field(pattern=TOKEN_ID, description="one token's id; all when absent")
    ] = None
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


router = APIRouter(tags=["principals"])


@router.get("/v1/principals", response_model=answers.Page)
def listing(
    request: Request, who: Who, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> JSONResponse:
    """Every principal with its live tokens (ids and times, never a secret)
    and the decision's ledger index (a page: ``items``, ``next_cursor``)."""
    rows, decision = room_of(request).token_holders(who)
    return JSONResponse(page(rows, cursor, limit, key=lambda p: p["name"], decision=decision))


@router.post(
    "/v1/principals/{name}/revocations", status_code=201, response_model=answers.Revocation
)
def revoke(request: Request, name: str, who: Who, body: RevocationBody) -> JSONResponse:
    """Revoke the principal's live tokens (or the one named) now, on the record:
    every server stops accepting them within its revocation check."""
    out = room_of(request).revoke_tokens(name, body.token, by=who.name, reason=body.reason,
                                         who=who)  # fmt: skip
    return JSONResponse(out, 201)
