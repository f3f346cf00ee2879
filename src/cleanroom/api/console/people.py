"""The signed-in pages of the people the clean room serves: a user's own
data, the operator's desk and a researcher's aggregates.

Each section asks the gate what the matching API route asks, with the same
purpose; a section the gate refuses shows the refusal (its rules and the
decision's ledger entry) instead of the data.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from cleanroom.api.auth import subject_of
from cleanroom.api.console.web import (
    COOKIE,
    InvalidForm,
    Posted,
    page,
    redirect,
    require_principal,
)
from cleanroom.api.routes.principals import RevocationBody
from cleanroom.errors import CleanroomError
from cleanroom.gate import Principal
from cleanroom.gate.deletion import public_order
from cleanroom.ledger.entries import commitment, encode_entry
from cleanroom.ledger.search import Query as SearchQuery
from cleanroom.vault import AccessDenied

router = APIRouter(include_in_schema=False)


def _user(request: Request) -> tuple[Principal, str]:
    who = require_principal(request)
    return who, subject_of(who)  # (a principal that is not a user: 403)


def _refusal(e: CleanroomError) -> dict[str, Any]:
    fields = getattr(e, "problem_fields", {}) or {}
    return {"refused": e.message, "rules": fields.get("rules", []),
            "ledger_index": fields.get("ledger_index")}  # fmt: skip


def _my_commitment(room: Any, subject: str) -> str | None:
    info = room.vault.subjects([subject]).get(subject)
    return commitment(info.salt, subject) if info is not None else None


@router.get("/console/me", response_class=HTMLResponse)
def me(request: Request) -> HTMLResponse:
    """My data, who accessed it and why (with proofs), my feed and why each video."""
    who, subject = _user(request)
    room = request.app.state.room
    rec = request.app.state.recommender
    # what this page shows is read as GET /v1/users/{me} and its events read it
    # (each decision on the record: a user sees their own reads below too)
    profile_grant = room.gate.require(who, "read", "Profile", purpose="user_request",
                                      subjects=[subject])  # fmt: skip
    profile = room.vault.get_user(profile_grant, subject)
    events_grant = room.gate.require(who, "read", "Events", purpose="user_request",
                                     subjects=[subject])  # fmt: skip
    events = room.vault.user_events(events_grant, subject, limit=10_000)
    mine = _my_commitment(room, subject)
    accesses = []
    if mine:
        _, found = room.log.store.search(SearchQuery(type="access.*", subject=mine, limit=200))
        accesses = [{"index": i, **json.loads(b)} for i, b in found]
    others = [a for a in accesses if a.get("principal") != who.name]
    feed: dict[str, Any] = {"items": []}
    if rec.ready.is_set():
        served = rec.serve(subject, limit=10)
        feed = served.to_dict()
        # committed as GET /v1/feed commits it (the log's async append, from this thread)
        body = encode_entry(served.entry)
        feed["ledger_index"] = anyio.from_thread.run(rec.commit, served, body)
    kinds: dict[str, int] = {}
    for ev in events:
        kinds[str(ev.get("kind"))] = kinds.get(str(ev.get("kind")), 0) + 1
    return page(
        request, "me.html", who=who, profile=profile, events=len(events),
        kinds=sorted(kinds.items(), key=lambda kv: -kv[1]), commitment=mine,
        accesses=accesses, by_others=others, feed=feed,
        mode=rec.settings.get(subject) or "personalized",
    )  # fmt: skip


@router.post("/console/me/feed-settings")
def feed_setting(request: Request, form: Posted) -> Response:
    _, subject = _user(request)
    mode = form.get("mode", "")
    if mode not in ("personalized", "popular"):
        raise InvalidForm("the feed is personalized or popular")
    request.app.state.recommender.set_mode(subject, mode)
    return redirect("/me#feed")


@router.get("/console/me/export")
def export(request: Request) -> Response:
    """Download everything stored about me (the same decision as GET /v1/me/data)."""
    who, subject = _user(request)
    room = request.app.state.room
    grant = room.gate.require(who, "export", "UserData", purpose="user_request", subjects=[subject])
    doc = {**room.vault.export_user(grant, subject), "decision": grant.decision}
    return Response(
        json.dumps(doc, indent=2), media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="cleanroom-export.json"'},
    )  # fmt: skip


@router.post("/console/me/delete", response_class=HTMLResponse)
def delete(request: Request, form: Posted) -> Response:
    """Delete my account: the same deletion as DELETE /v1/me, then a receipt page."""
    who, subject = _user(request)
    if form.get("confirm") != "delete":
        raise InvalidForm("type delete to confirm that your data is to be erased")
    room = request.app.state.room
    receipt = room.deletions.delete_user(who, subject, purpose="user_request")
    resp = page(request, "deleted.html", who=None, receipt=receipt.body, entry=receipt.entry)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# ---- the operator's desk ---------------------------------------------------


def _section(fn: Any) -> dict[str, Any]:
    try:
        return {"data": fn()}
    except AccessDenied as e:
        return _refusal(e)


@router.get("/console/operator", response_class=HTMLResponse)
def operator(request: Request) -> HTMLResponse:
    """Principals and tokens, the screening queue, exports, deletion orders, nodes."""
    who = require_principal(request)
    if who.org != "operator":
        raise AccessDenied(f"{who.name} is not the operator's: the operator's desk is theirs",
                           hint="sign in with an operator's token")  # fmt: skip
    room = request.app.state.room
    store = room.log.store

    def principals() -> list[dict[str, Any]]:
        return room.token_holders(who)[0]  # (as GET /v1/principals)

    def screenings() -> dict[str, Any]:
        room.gate.require(who, "read", "Screenings")
        _, hits = store.search(SearchQuery(type="screen.screening", limit=50))
        _, dismissed = store.search(SearchQuery(type="screen.dismissed", limit=200))
        return {"screenings": [{"index": i, **json.loads(b)} for i, b in hits],
                "dismissed": [{"index": i, **json.loads(b)} for i, b in dismissed]}  # fmt: skip

    def exports() -> dict[str, Any]:
        room.gate.require(who, "read", "Decisions")
        return room.egress.summary()

    def orders() -> list[dict[str, Any]]:
        room.gate.require(who, "read", "DeletionOrders", purpose="oversight")
        return [public_order(o) for o in room.deletions.orders.list()]

    nodes, nodes_stopped = _nodes(room)
    return page(
        request, "operator.html", who=who, principals=_section(principals),
        screening=_section(screenings), exports=_section(exports), orders=_section(orders),
        deletions=[{"index": i, **json.loads(b)} for i, b in
                   store.search(SearchQuery(type="deletion.*", limit=50))[1]],
        revocations=[{"index": i, **json.loads(b)} for i, b in
                     store.search(SearchQuery(type="principal.tokens_revoked", limit=50))[1]],
        nodes=nodes, nodes_stopped=nodes_stopped,
    )  # fmt: skip


def _nodes(room: Any) -> tuple[list[dict[str, Any]], int]:
    """The nodes up, silent, or stopped within the hour; and how many stopped before."""
    from cleanroom.cluster.nodes import Nodes

    try:
        nodes = Nodes(room.db).list()
    except Exception:
        return [], 0
    shown = [n for n in nodes if n["state"] != "stopped" or n["age_ms"] < 3_600_000]
    return shown, len(nodes) - len(shown)


@router.post("/console/operator/dismissals")
def dismiss(request: Request, form: Posted) -> Response:
    """Dismiss a screening candidate as a false positive (as POST /v1/screen/dismissals)."""
    who = require_principal(request)
    room = request.app.state.room
    room.gate.require(who, "write", "Screenings")
    room.screening.dismiss(form.get("name", ""), form.get("list", ""), form.get("party_id", ""),
                           by=who.name, reason=form.get("reason", ""))  # fmt: skip
    return redirect("/operator#screening")


REVOCATION_FORM_ERRORS = {
    "reason": "say why (up to 2,000 characters): a revocation goes on the record",
    "token": "a token id is 16 hexadecimal digits",
}


@router.post("/console/operator/revocations")
def revoke_tokens(request: Request, form: Posted) -> Response:
    """Revoke a principal's tokens, all or one (as POST /v1/principals/{name}/revocations)."""
    who = require_principal(request)
    try:  # the API route's own rules
        body = RevocationBody(
            token=form.get("token") or None, reason=form.get("reason", "").strip()
        )
    except ValidationError as e:
        field = e.errors()[0]["loc"][0]
        raise InvalidForm(REVOCATION_FORM_ERRORS.get(str(field), str(e))) from None
    request.app.state.room.revoke_tokens(form.get("name", ""), body.token, by=who.name,
                                         reason=body.reason, who=who)  # fmt: skip
    return redirect("/operator#principals")


# ---- research ----------------------------------------------------------------


def _aggregates(request: Request, who: Principal, by: str, min_group: int) -> dict[str, Any]:
    """The same release as GET /v1/aggregates/events, at its default budget."""
    from cleanroom.gate.privacy import DEFAULT_EPSILON

    return request.app.state.room.event_aggregates(
        who, by=by, min_group=min_group, epsilon=DEFAULT_EPSILON, purpose="research",
        route="/console/research",
    )  # fmt: skip


def _min_group(text: str) -> int:
    if not text.isdigit() or not 10 <= int(text) <= 100_000:
        raise InvalidForm("the smallest group is a whole number from 10 to 100,000")
    return int(text)


@router.get("/console/research", response_class=HTMLResponse)
def research(request: Request) -> HTMLResponse:
    """The aggregates a researcher may query (a query spends privacy budget,
    so it is a form, posted)."""
    who = require_principal(request)
    return page(request, "research.html", who=who, by="kind", min_group="10", result=None)


def _query(form: dict[str, str]) -> tuple[str, int]:
    by = form.get("by", "")
    if by not in ("kind", "video"):
        raise InvalidForm("aggregates are by kind or by video")
    return by, _min_group(form.get("min_group", "10"))


@router.post("/console/research", response_class=HTMLResponse)
def research_query(request: Request, form: Posted) -> HTMLResponse:
    who = require_principal(request)
    by, min_group = _query(form)
    result = _aggregates(request, who, by, min_group)
    return page(request, "research.html", who=who, by=by, min_group=str(min_group),
                result=result)  # fmt: skip


@router.post("/console/research.csv")
def research_csv(request: Request, form: Posted) -> Response:
    """The same release as CSV (a query of its own: it spends budget too)."""
    who = require_principal(request)
    by, min_group = _query(form)
    result = _aggregates(request, who, by, min_group)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([by, "count"])
    for k, v in sorted((result.get("counts") or {}).items()):
        writer.writerow([k, v])
    disposition = f'attachment; filename="aggregates-{by}.csv"'
    return Response(
        out.getvalue(), media_type="text/csv", headers={"Content-Disposition": disposition}
    )
