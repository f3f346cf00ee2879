"""The boost registry over HTTP: declare a boost (operator or platform), the
oversight body approves or rejects it, either side revokes it; every step is
decided by the gate (resource class ``Boosts``) and is a ledger entry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, recommender_of, room_of
from cleanroom.api.pages import DEFAULT_LIMIT, Cursor, Limit, page
from cleanroom.gate.boosts import MAX_FACTOR, BoostRequest


class BoostBody(BaseModel):
    """A boost to declare: which video, by how much, why and when."""

    model_config = ConfigDict(extra="forbid")

    video: Annotated[str, Field(min_length=1, max_length=128)]
    factor: Annotated[float, Field(gt=0, le=MAX_FACTOR, description="added to the score")]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    start_ms: Annotated[int, Field(ge=0)]
    end_ms: Annotated[int, Field(ge=0)]
    label: Annotated[str, Field(min_length=1, max_length=200)] = "Promoted"
    regions: Annotated[list[str], Field(max_length=250)] = []


class ReviewBody(BaseModel):
    """The oversight body's review of a boost (with its signed review)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Annotated[str, Field(max_length=2000)] = ""
    envelope: Annotated[
        dict[str, Any] | None,
        Field(
            description="for an approval: a DSSE envelope of a review of the boost's "
            "declaration (its declared_digest) signed by a reviewer of the oversight body"
        ),
    ] = None


class RevokeBody(BaseModel):
    """Why a boost is revoked."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


router = APIRouter(tags=["boosts"])


def _applied(request: Request) -> None:
    rec = getattr(request.app.state, "recommender", None)
    if rec is not None:
        rec.refresh_boosts()


@router.post("/v1/boosts", status_code=201, response_model=answers.Boost)
def declare(request: Request, who: Who, body: BoostBody) -> JSONResponse:
    """Declare a manual boost of a video: how much, why, where, when. It
    applies only once the oversight body approves it."""
    room = room_of(request)
    catalog = recommender_of(request).engine.catalog
    req = BoostRequest(
        body.video, body.factor, body.reason, body.start_ms, body.end_ms, body.label,
        tuple(body.regions),
    )  # fmt: skip
    out = room.boosts.declare(who, req, known=lambda v: catalog.get(v) is not None)
    return JSONResponse(out, 201)


@router.post("/v1/boosts/{boost_id}/review", response_model=answers.Boost)
def review(request: Request, boost_id: str, who: Who, body: ReviewBody) -> JSONResponse:
    """Approve or reject a declared boost (the oversight body)."""
    room = room_of(request)
    out = room.boosts.review(
        who, boost_id, approve=body.decision == "approve", note=body.note,
        envelope=body.envelope,
    )  # fmt: skip
    _applied(request)
    return JSONResponse(out)


@router.post("/v1/boosts/{boost_id}/revoke", response_model=answers.Boost)
def revoke(request: Request, boost_id: str, who: Who, body: RevokeBody) -> JSONResponse:
    """End a boost now (its declaring party or the oversight body)."""
    room = room_of(request)
    out = room.boosts.revoke(who, boost_id, body.reason)
    _applied(request)
    return JSONResponse(out)


@router.get("/v1/boosts", response_model=answers.Page)
def listing(
    request: Request,
    who: Who,
    status: Annotated[
        Literal["declared", "approved", "rejected", "revoked"] | None, Query()
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """Every declared boost and its state, with its ledger entries (a page:
    ``items``, ``next_cursor``)."""
    room = room_of(request)
    room.gate.require(who, "read", "Boosts")
    items = room.boosts.list(status)
    return JSONResponse(page(items, cursor, limit, key=lambda b: b["id"]))


@router.get("/v1/boosts/{boost_id}", response_model=answers.Boost)
def one(request: Request, boost_id: str, who: Who) -> JSONResponse:
    """One boost: its state, its ledger entries and the digest of its
    declaration (what an oversight reviewer signs to approve it)."""
    room = room_of(request)
    room.gate.require(who, "read", "Boosts")
    return JSONResponse(room.boosts.get(boost_id))
