"""The oversight console: incidents from the monitor's alerts, boosts and
releases waiting for review, each action on the record.

Alerts come from the oversight body's monitor (its state directory, given to
``cleanroom serve --monitor-state``), grouped by root cause
(``oversight.incidents``). Acknowledging or resolving an incident is an
``oversight.incident`` ledger entry written after the gate allows the
principal to write oversight data. A boost is approved with a review signed
in the browser by the reviewer's own key (``console.js``); the clean room
checks the signature as it does for the API.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from cleanroom.api.console.web import InvalidForm, Posted, page, redirect, require_principal
from cleanroom.audit.report import findings, kept_reports, render_html, verdict
from cleanroom.gate import Principal
from cleanroom.ledger.authority import BOOST_REVIEW_TYPE, IN_TOTO_STATEMENT
from cleanroom.ledger.search import Query as SearchQuery
from cleanroom.oversight.alerts import AlertStore
from cleanroom.oversight.incidents import Incident, group, latest_actions, status_of
from cleanroom.room.review import diff_lines

router = APIRouter(include_in_schema=False)
ACTIONS = ("acknowledge", "resolve", "reopen")
IncidentId = Annotated[str, PathParam(pattern=r"^inc-[0-9a-f]{12}$")]


def _oversight(request: Request, write: bool = False) -> Principal:
    """The signed-in principal, if the gate lets it read (or write) oversight data."""
    who = require_principal(request)
    room = request.app.state.room
    room.gate.require(who, "write" if write else "read", "OversightData", purpose="oversight")
    return who


def _incidents(request: Request) -> tuple[list[Incident], list[dict[str, Any]], str | None]:
    """The incidents of the monitor's alerts, the actions on them on the
    ledger (oldest first, with their index), and the state directory read
    (None: none given)."""
    state = getattr(request.app.state, "monitor_state", None)
    alerts = AlertStore(Path(state)).all() if state else []
    store = request.app.state.log.store
    _, found = store.search(SearchQuery(type="oversight.incident", limit=500))
    recorded = [{**json.loads(body), "index": i} for i, body in reversed(found)]
    return group(alerts), recorded, state


@router.get("/console/oversight", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    who = _oversight(request)
    room = request.app.state.room
    incidents, recorded, state = _incidents(request)
    actions = latest_actions(recorded)
    rows = [{**i.to_dict(), "status": status_of(i, actions), "action": actions.get(i.id)}
            for i in incidents]  # fmt: skip
    room.gate.require(who, "read", "Boosts")
    waiting = [room.boosts.get(b["id"]) for b in room.boosts.list("declared")]
    reviews = []
    for art in room.releases.artifacts():
        verdict = room.releases.verdict(art.digest)
        live = room.releases.live(art.kind)
        if not verdict.approved and not verdict.vetoed_by:
            reviews.append({**art.to_dict(), "verdict": verdict.to_dict(),
                            "live": bool(live and live.artifact == art.digest)})  # fmt: skip
    open_alerts = sum(r["alerts"] for r in rows if r["status"] != "resolved")
    return page(
        request, "oversight.html", who=who, incidents=rows, monitor_state=state,
        open_alerts=open_alerts, boosts=waiting, releases=reviews,
        exposure=_exposure(request), replay=_replay(incidents), audits=_audits(state),
        statement_type=IN_TOTO_STATEMENT, predicate_type=BOOST_REVIEW_TYPE,
    )  # fmt: skip


def _exposure(request: Request) -> dict[str, Any]:
    """Impressions across real traffic (what GET /v1/oversight/exposure gives,
    under the same decision the page already took): by hour, by ranking
    configuration — approved or not — and the most shown videos."""
    rec = getattr(request.app.state, "recommender", None)
    if rec is None:
        return {"impressions": 0}
    rows = rec.exposure_rows(0)
    approved = getattr(request.app.state, "approved_ranking", None)
    approved_digest = approved.digest() if approved is not None else None
    by_hour: Counter[str] = Counter()
    by_config: Counter[str] = Counter()
    by_video: Counter[str] = Counter()
    boosted = 0
    for r in rows:
        n = int(r.get("impressions", 0))
        by_hour[time.strftime("%m-%d %H:00", time.gmtime(r["hour_ms"] / 1000))] += n
        by_config[str(r["ranking_config"])] += n
        by_video[str(r["video"])] += n
        boosted += int(r.get("boosted_impressions", 0))
    return {
        "impressions": sum(by_config.values()), "boosted": boosted,
        "by_hour": sorted(by_hour.items())[-24:], "top_videos": by_video.most_common(10),
        "by_config": [{"config": c, "impressions": n, "approved": c == approved_digest}
                      for c, n in by_config.most_common()],
        "approved": approved_digest,
    }  # fmt: skip


def _audits(state: str | None, n: int = 5) -> list[dict[str, Any]]:
    """The latest audit reports kept in the monitor's state, with their verdicts."""
    out = []
    for path in kept_reports(Path(state))[:n] if state else []:
        doc = json.loads(path.read_text())
        found = findings(doc)
        out.append({"id": path.stem, "generated_ms": doc.get("generated_ms"),
                    "verdict": verdict(found), "findings": len(found),
                    "critical": sum(f["severity"] == "critical" for f in found)})  # fmt: skip
    return out


@router.get("/console/oversight/audits/{report_id}", response_class=HTMLResponse)
def audit_report(
    request: Request, report_id: Annotated[str, PathParam(pattern=r"^[0-9]{1,16}$")]
) -> HTMLResponse:
    """An audit report kept in the monitor's state, as the decision document
    ``cleanroom audit run`` writes (verdict and findings first)."""
    _oversight(request)
    state = getattr(request.app.state, "monitor_state", None)
    path = Path(state) / "audits" / f"{report_id}.json" if state else None
    if path is None or not path.is_file():
        raise IncidentNotFound(f"no audit report {report_id} in the monitor's state")
    resp = HTMLResponse(render_html(json.loads(path.read_text())))
    # the report is a standalone document: its own style and copy buttons, nothing remote
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _replay(incidents: list[Incident]) -> dict[str, Any]:
    """The replay audit as the monitor's alerts show it: feeds whose replay
    with the approved algorithm differs from what was committed."""
    mismatched = [a for i in incidents for a in i.alerts if a.get("kind") == "replay-mismatch"]
    configs = Counter(str(a.get("evidence", {}).get("served_config")) for a in mismatched)
    return {"mismatched": len(mismatched), "by_config": configs.most_common()}


@router.get("/console/oversight/incidents/{incident_id}", response_class=HTMLResponse)
def incident(request: Request, incident_id: IncidentId) -> HTMLResponse:
    who = _oversight(request)
    incidents, recorded, _ = _incidents(request)
    found = _find(incidents, incident_id)
    history = [e for e in recorded if e.get("incident") == incident_id]
    state = status_of(found, latest_actions(recorded))
    return page(request, "incident.html", who=who, incident=found.to_dict(),
                alerts=found.alerts, state=state, history=history)  # fmt: skip


def _find(incidents: list[Incident], incident_id: str) -> Incident:
    for i in incidents:
        if i.id == incident_id:
            return i
    raise IncidentNotFound(f"no incident {incident_id} among the monitor's alerts")


@router.post("/console/oversight/incidents/{incident_id}")
def act(request: Request, incident_id: IncidentId, form: Posted) -> Response:
    """Acknowledge, resolve or reopen an incident: an ``oversight.incident`` entry."""
    who = _oversight(request, write=True)
    action, note = form.get("action", ""), form.get("note", "").strip()
    if action not in ACTIONS:
        raise InvalidForm(f"the action must be one of {', '.join(ACTIONS)}")
    if action == "resolve" and not note:
        raise InvalidForm("resolving an incident says how it was resolved (the note)")
    incidents, _, _ = _incidents(request)
    found = _find(incidents, incident_id)
    entry = {
        "type": "oversight.incident", "v": 1, "incident": incident_id, "action": action,
        "by": who.name, "note": note[:2000], "kind": found.kind, "cause": found.cause[:500],
        "alerts": len(found.alerts), "entries": found.entries[:1000],
        "time_ms": int(time.time() * 1000),
    }  # fmt: skip
    log = request.app.state.room.log
    log.wait_for(log.append(entry))  # the page it returns to shows it, provable
    return redirect(f"/oversight/incidents/{incident_id}")


@router.post("/console/oversight/boosts/{boost_id}/review")
def review_boost(request: Request, boost_id: str, form: Posted) -> Response:
    """Approve (with the review signed in the browser) or reject a boost."""
    who = require_principal(request)
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidForm("the decision is approve or reject")
    raw = form.get("envelope", "").strip()
    try:
        envelope = json.loads(raw) if raw else None
    except ValueError:
        raise InvalidForm("the signed review is not JSON") from None
    room = request.app.state.room
    room.boosts.review(who, boost_id, approve=decision == "approve",
                       note=form.get("note", "")[:2000], envelope=envelope)  # fmt: skip
    rec = getattr(request.app.state, "recommender", None)
    if rec is not None:
        rec.refresh_boosts()
    return redirect("/oversight#boosts")


@router.get("/console/releases/{digest}", response_class=HTMLResponse)
def release(request: Request, digest: str) -> HTMLResponse:
    """One release: its verdict, reviews, evaluation and the diff reviewers read."""
    who = require_principal(request)
    room = request.app.state.room
    room.gate.require(who, "read", "Releases")
    reg = room.releases
    art = reg.get(digest)
    return page(
        request, "release.html", who=who, art=art.to_dict(),
        verdict=reg.verdict(digest).to_dict(), reviews=[r.__dict__ for r in reg.reviews(digest)],
        evaluation=reg.evaluation(digest), diff=diff_lines(room, digest),
    )  # fmt: skip


class IncidentNotFound(InvalidForm):
    status = 404
    title = "No such incident"
