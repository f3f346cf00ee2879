"""The platform, staff, user and oversight API over the vault — every route
authenticates a principal and goes through the gate.

The purpose of a request is its ``purpose`` query parameter; a denied request
answers 403 with the deciding rules and the ledger index of the decision.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, recommender_of, room_of, subject_of
from cleanroom.api.guard import NOT_PARSED, parsed_body
from cleanroom.api.pages import DEFAULT_LIMIT, BadCursor, Cursor, Limit, page
from cleanroom.api.pages import decode as decode_cursor
from cleanroom.api.pages import encode as encode_cursor
from cleanroom.gate.deletion import public_order
from cleanroom.gate.privacy import DEFAULT_EPSILON, MAX_EPSILON
from cleanroom.storage.errors import CleanroomError
from cleanroom.vault import Event, InvalidRecord, User, Video
from cleanroom.vault.store import MAX_BATCH


class PayloadTooLarge(CleanroomError):
    """A batch larger than the route takes."""

    status = 413
    title = "Payload too large"


Purpose = Annotated[
    str,
    Query(description="why the data is accessed: support, safety, legal, recommendation, …"),
]


async def _json_body(request: Request, key: str) -> list[Any]:
    """The ``{key: [...]}`` body: as the input guard parsed it (capped, I-JSON),
    or parsed here when it was sent without a JSON content type."""
    doc = parsed_body(request)
    if doc is NOT_PARSED:
        try:
            doc = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRecord(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list) or set(doc) != {key}:
        raise InvalidRecord(f'the body must be {{"{key}": [ … ]}}')
    items = doc[key]
    if not items:
        raise InvalidRecord(f"{key} is empty")
    if len(items) > MAX_BATCH:
        raise PayloadTooLarge(f"at most {MAX_BATCH} {key} per request, got {len(items)}")
    return items


def _parse_all(items: list[Any], parse: Any, what: str) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse(item))
        except InvalidRecord as exc:
            raise InvalidRecord(f"{what}[{i}]: {exc.message}", hint=exc.hint) from None
    return out


class DeletionOrderIn(BaseModel):
    """A deletion order: one user, or every user of a jurisdiction."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["user", "jurisdiction"]
    target: str = Field(description="a user id, or a jurisdiction code")
    reason: str = Field(min_length=1, max_length=2000)
    deadline_days: int = Field(default=30, ge=0, le=365)


router = APIRouter()

# ---- platform ----------------------------------------------------------


@router.post("/v1/events", tags=["platform"], response_model=answers.EventsStored)
async def post_events(request: Request, who: Who, purpose: Purpose = "") -> JSONResponse:
    """Store a batch of events atomically (all or nothing; at most 10,000)."""
    items = await _json_body(request, "events")
    events = _parse_all(items, Event.parse, "events")
    room = room_of(request)

    def work() -> dict[str, Any]:
        grant = room.gate.require(
            who, "write", "Events", purpose=purpose, subjects=[e.user for e in events]
        )
        n = recommender_of(request).store(grant, events).count
        out = {"stored": n, "decision": grant.decision}
        if events and not n:
            out["already_stored"] = len(events)
        return out

    return JSONResponse(await anyio.to_thread.run_sync(work))


@router.post("/v1/videos", tags=["platform"], response_model=answers.VideosStored)
async def post_videos(request: Request, who: Who, purpose: Purpose = "") -> JSONResponse:
    """Register or update videos (atomic; at most 10,000)."""
    items = await _json_body(request, "videos")
    videos = _parse_all(items, Video.parse, "videos")
    room = room_of(request)

    def work() -> dict[str, Any]:
        grant = room.gate.require(who, "write", "Videos", purpose=purpose)
        written = room.vault.put_videos(grant, videos)
        recommender_of(request).add_videos(videos)
        return {"written": written, "decision": grant.decision}

    return JSONResponse(await anyio.to_thread.run_sync(work))


@router.put("/v1/users/{user_id}", tags=["platform"], response_model=answers.UserStored)
def put_user(
    request: Request,
    user_id: str,
    who: Who,
    doc: Annotated[dict[str, Any], Body(description="jurisdiction, profile, public")],
    purpose: Purpose = "",
) -> JSONResponse:
    """Create or replace a user: protected profile fields are encrypted under
    the user's own data key, at a site of the user's jurisdiction only."""
    user = User.parse(user_id, doc)
    room = room_of(request)
    grant = room.gate.require(who, "write", "Profile", purpose=purpose, subjects=[user_id])
    created = room.vault.put_user(grant, user)
    return JSONResponse(
        {"id": user_id, "created": created, "decision": grant.decision},
        status_code=201 if created else 200,
    )


def _user_of(item: Any) -> User:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise InvalidRecord("each user is an object with its id")
    return User.parse(item["id"], {k: v for k, v in item.items() if k != "id"})


@router.post("/v1/users", tags=["platform"], response_model=answers.UsersStored)
async def post_users(request: Request, who: Who, purpose: Purpose = "") -> JSONResponse:
    """Add a batch of users (atomic; at most 10,000): one decision for the
    batch; users already stored are left as they are (``already_stored``) —
    change one with ``PUT /v1/users/{id}``."""
    items = await _json_body(request, "users")
    users = _parse_all(items, _user_of, "users")
    room = room_of(request)

    def work() -> dict[str, Any]:
        ids = [u.id for u in users]
        grant = room.gate.require(who, "write", "Profile", purpose=purpose, subjects=ids)
        created = room.vault.put_users(grant, users)
        return {"created": created, "already_stored": len(users) - created,
                "decision": grant.decision}  # fmt: skip

    return JSONResponse(await anyio.to_thread.run_sync(work))


# ---- staff -------------------------------------------------------------


@router.get("/v1/users/{user_id}", tags=["staff"], response_model=answers.UserRecord)
def get_user(request: Request, user_id: str, who: Who, purpose: Purpose = "") -> JSONResponse:
    """A user's record; fields the decision's obligations name come masked."""
    room = room_of(request)
    grant = room.gate.require(who, "read", "Profile", purpose=purpose, subjects=[user_id])
    doc = room.vault.get_user(grant, user_id)
    return JSONResponse({**doc, "decision": grant.decision})


@router.get("/v1/users/{user_id}/events", tags=["staff"], response_model=answers.UserEvents)
def get_user_events(
    request: Request,
    user_id: str,
    who: Who,
    purpose: Purpose = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before_ms: Annotated[int | None, Query(ge=0)] = None,
    cursor: Cursor = None,
) -> JSONResponse:
    """A user's events, newest first, a page (``items``, ``next_cursor``);
    client context is withheld under a masking obligation."""
    room = room_of(request)
    grant = room.gate.require(who, "read", "Events", purpose=purpose, subjects=[user_id])
    after: tuple[int, str] | None = None  # the last event of the previous page
    if cursor is not None:
        c = decode_cursor(cursor)
        if not isinstance(c.get("ts"), int) or not isinstance(c.get("id"), str):
            raise BadCursor("the cursor is not one this API gave out")
        after = (c["ts"], c["id"])
    events = room.vault.user_events(
        grant, user_id, limit=limit + 1, before_ms=before_ms, after=after
    )
    more, events = len(events) > limit, events[:limit]
    if grant.obligations:
        for e in events:
            e["context"] = {"masked": True}
    last = events[-1] if events and more else None
    return JSONResponse(
        {
            "user": user_id,
            "items": events,
            "next_cursor": encode_cursor({"ts": last["ts_ms"], "id": last["id"]}) if last else None,
            "decision": grant.decision,
            "obligations": list(grant.obligations),
        }
    )


# ---- users -------------------------------------------------------------


@router.get("/v1/me/data", tags=["users"], response_model=answers.UserExport)
def export_me(request: Request, who: Who, purpose: Purpose = "user_request") -> JSONResponse:
    """A portable export of everything stored about the calling user."""
    room = room_of(request)
    subject = subject_of(who)
    grant = room.gate.require(who, "export", "UserData", purpose=purpose, subjects=[subject])
    doc = room.vault.export_user(grant, subject)
    return JSONResponse(
        {**doc, "decision": grant.decision},
        headers={"Content-Disposition": 'attachment; filename="cleanroom-export.json"'},
    )


@router.delete("/v1/me", tags=["users"], response_model=answers.DeletionReceipt)
def delete_me(request: Request, who: Who, purpose: Purpose = "user_request") -> JSONResponse:
    """Delete the calling user: key destroyed, rows removed, receipt on the ledger."""
    room = room_of(request)
    # the erased user's principals and tokens go with the data (a vault hook)
    receipt = room.deletions.delete_user(who, subject_of(who), purpose=purpose)
    return JSONResponse({"receipt": receipt.entry, **receipt.body})


# ---- oversight and research ---------------------------------------------


@router.post(
    "/v1/oversight/deletion-orders",
    tags=["oversight"],
    status_code=201,
    response_model=answers.DeletionOrder,
)
def order_deletion(request: Request, who: Who, body: DeletionOrderIn) -> JSONResponse:
    """Order the deletion of one user (executed at once) or of every user of a
    jurisdiction (runs in the background in batches; 202)."""
    room = room_of(request)
    order = room.deletions.order(who, **body.model_dump())
    executor = room.system("deletion-service")
    if order["scope"] == "user":
        done = room.deletions.run(executor, order["id"])
        return JSONResponse({**done, "entry": order["entry"]}, status_code=201)
    request.app.state.order_runner.submit(order["id"])
    return JSONResponse(order, status_code=202)


@router.get(
    "/v1/oversight/deletion-orders", tags=["oversight"], response_model=answers.DeletionOrders
)
def list_orders(
    request: Request,
    who: Who,
    purpose: Purpose = "oversight",
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """Deletion orders and their progress (metadata; no user ids), a page."""
    room = room_of(request)
    grant = room.gate.require(who, "read", "DeletionOrders", purpose=purpose)
    orders = [public_order(o) for o in room.deletions.orders.list()]
    return JSONResponse(page(orders, cursor, limit, key=lambda o: o["id"], decision=grant.decision))


@router.get("/v1/aggregates/events", tags=["research"], response_model=answers.Aggregates)
def aggregates(
    request: Request,
    who: Who,
    purpose: Purpose = "research",
    by: Annotated[str, Query(pattern="^(kind|video)$")] = "kind",
    min_group: Annotated[int, Query(ge=10, le=100_000)] = 10,
    epsilon: Annotated[
        float,
        Query(gt=0, le=MAX_EPSILON, description="the privacy budget (ε) this release spends"),
    ] = DEFAULT_EPSILON,
) -> JSONResponse:
    """Event counts by kind or video. For anyone but the oversight body a
    differentially private release (OpenDP, discrete Laplace, each user
    counted for at most 5 events) charged to the caller's privacy budget
    and recorded on the ledger (``privacy.spent``); groups whose noisy count
    is under ``min_group`` are withheld. The oversight body reads exact
    counts over at least ``min_group`` distinct users per group."""
    room = room_of(request)
    out = room.event_aggregates(who, by=by, min_group=min_group, epsilon=epsilon,
                                purpose=purpose, route="/v1/aggregates/events")  # fmt: skip
    return JSONResponse(out)
