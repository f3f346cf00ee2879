"""Screening and exports over HTTP: screen names against the loaded lists,
dismiss false positives, read the loaded lists and the infrastructure report,
and export data through the egress gate. Screening is decided by the gate
(resource class ``Screenings``); an export by the egress gate, which screens
the recipient and decides the access like every other."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cleanroom.api import models as answers
from cleanroom.api.auth import Who, room_of
from cleanroom.api.pages import DEFAULT_LIMIT, Cursor, Limit, page
from cleanroom.api.problems import problem
from cleanroom.gate.egress import ExportRequest
from cleanroom.gate.privacy import DEFAULT_EPSILON, MAX_EPSILON
from cleanroom.screen.errors import ScreeningInputError
from cleanroom.screen.index import MAX_NAME_CHARS, check_batch
from cleanroom.screen.screener import MAX_CANDIDATES

MAX_API_BATCH = 1_000
Schema = Literal["any", "Person", "Company", "Organization", "LegalEntity", "Vessel", "Airplane"]


class ScreenRequest(BaseModel):
    """One name or a batch of names to screen."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=MAX_NAME_CHARS)] = None
    names: Annotated[list[str] | None, Field(description=f"up to {MAX_API_BATCH} names")] = None
    schema_: Annotated[Schema, Field(alias="schema")] = "any"
    explain: bool = True
    threshold: Annotated[
        float | None,
        Field(
            gt=0,
            le=1,
            strict=True,  # not `true` for 1.0, nor "0.7": a threshold is a number
            description="decide at this score instead of the matcher's default",
        ),
    ] = None
    limit: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_CANDIDATES,
            strict=True,
            description="candidates to show per name (default 5)",
        ),
    ] = None


class DismissRequest(BaseModel):
    """A match dismissed as a false positive, for one list version."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
    list: Annotated[str, Field(min_length=1, max_length=64)]
    party_id: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class ExportBody(BaseModel):
    """An export to screen and, if allowed, release."""

    model_config = ConfigDict(extra="forbid")

    recipient: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
    country: Annotated[str, Field(min_length=2, max_length=64, description="ISO 3166 alpha-2")]
    kind: Literal["aggregates", "videos", "user_data"]
    purpose: Annotated[str, Field(max_length=32)] = "research"
    by: Literal["kind", "video"] = "kind"
    min_group_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    epsilon: Annotated[
        float,
        Field(gt=0, le=MAX_EPSILON, description="aggregates: the privacy budget (ε) to spend"),
    ] = DEFAULT_EPSILON


router = APIRouter(tags=["screening"])


@router.post("/v1/screen", response_model=answers.Screening)
async def screen(request: Request, who: Who, body: ScreenRequest) -> JSONResponse:
    """Screen a name (``name``) or a batch (``names``) against the loaded
    lists: candidates with scores and explanations, ownership paths, the
    decision at the threshold; each screening is a ledger entry."""
    room = room_of(request)
    if (body.name is None) == (body.names is None):
        raise ScreeningInputError("give either 'name' or 'names'")
    if body.names is not None and not body.names:
        raise ScreeningInputError("'names' is empty")
    # the whole request is checked before anything is decided or recorded
    if body.name is not None:
        check_batch([(body.name, body.schema_)], 1, lambda _: "name")
    else:
        batch = [(n, body.schema_) for n in body.names or []]
        check_batch(batch, MAX_API_BATCH, lambda n: f"names[{n}]")

    def run() -> JSONResponse:
        room.gate.require(who, "write", "Screenings")
        options = {"threshold": body.threshold, "limit": body.limit}
        if body.name is not None:
            s, entry = room.screening.screen(body.name, body.schema_, by=who.name, **options)
            return JSONResponse({**s.as_json(explain=body.explain), "ledger_index": entry})
        done = room.screening.screen_many(
            [(n, body.schema_) for n in body.names or []], by=who.name, **options
        )
        return JSONResponse(
            [{**s.as_json(explain=body.explain), "ledger_index": e} for s, e in done]
        )

    return await run_in_threadpool(run)


@router.get("/v1/screen/algorithms", response_model=answers.Open)
def algorithms(request: Request, who: Who) -> JSONResponse:
    """The matcher screenings run with: its version (every screening and its
    ledger entry name it), default threshold, features and weights, the rules
    that hold a score below the threshold, how it was fitted and what was
    measured (list-level false alerts and recall, the pair benchmark)."""
    room = room_of(request)
    room.gate.require(who, "read", "Screenings")
    m = room.screening.screener().index.matcher
    return JSONResponse({"default": m.version, "algorithms": [m.describe()]})


@router.post("/v1/screen/dismissals", status_code=201, response_model=answers.Open)
def dismiss(request: Request, who: Who, body: DismissRequest) -> JSONResponse:
    """Dismiss a candidate as a false positive for this party and the list's
    current version (on the record: who overrode what, and why)."""
    room = room_of(request)
    room.gate.require(who, "write", "Screenings")
    out = room.screening.dismiss(
        body.name, body.list, body.party_id, by=who.name, reason=body.reason
    )
    return JSONResponse(out, 201)


@router.get("/v1/screen/lists", response_model=answers.Page)
def lists(
    request: Request,
    who: Who,
    all_versions: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> JSONResponse:
    """The loaded lists: versions, sources, parties, the ledger entry of each
    load (a page)."""
    room = room_of(request)
    room.gate.require(who, "read", "Screenings")
    rows = room.screening.lists()
    rows = rows if all_versions else [x for x in rows if x["current"]]
    return JSONResponse(page(rows, cursor, limit, key=lambda x: [x["list"], x["version"]]))


@router.get("/v1/screen/infra", response_model=answers.Open | None)
def infra(request: Request, who: Who) -> JSONResponse:
    """The Clean Network check of this server's start (null without a manifest)."""
    room = room_of(request)
    room.gate.require(who, "read", "Screenings")
    return JSONResponse(getattr(request.app.state, "infra", None))


@router.post("/v1/exports", response_model=answers.Exported)
def export(request: Request, who: Who, body: ExportBody) -> JSONResponse:
    """Export data out of the clean room through the egress gate: the
    recipient is screened, the access decided, small groups suppressed, the
    DSP bulk thresholds enforced; the flow is a ledger entry either way.
    Refused: 403 problem+json with the reasons and the entry."""
    room = room_of(request)
    result = room.egress.export(
        who,
        ExportRequest(
            body.recipient,
            body.country,
            body.kind,
            body.purpose,
            body.by,
            body.min_group_size,
            body.epsilon,
        ),
    )
    if not result.allowed:
        return problem(
            403,
            "Export refused",
            "; ".join(result.reasons),
            request.url.path,
            reasons=result.reasons,
            ledger_index=result.entry,
            screening_entry=result.screening_entry,
            decision_entry=result.decision_entry,
        )
    return JSONResponse(result.as_json())


@router.get("/v1/exports", response_model=answers.Flows)
def flows(request: Request, who: Who) -> JSONResponse:
    """Export flows (each a ledger entry), counted by destination and data class."""
    room = room_of(request)
    room.gate.require(who, "read", "Screenings")
    return JSONResponse(room.egress.summary())
