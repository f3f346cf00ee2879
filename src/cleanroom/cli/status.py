"""``cleanroom status [--json]``: a clean room at a glance, and the next step
when something is missing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cleanroom.cli.common import data_directory


def _when(ms: Any) -> str:
    if not isinstance(ms, int):
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def gather(monitor_state: Path | None) -> dict[str, Any]:
    """Everything ``status`` shows, as one document."""
    from cleanroom.ledger.note import parse_note
    from cleanroom.ledger.search import Query
    from cleanroom.room import CleanRoom

    dd = data_directory()
    out: dict[str, Any] = {"data_dir": str(dd.path.resolve())}
    if not dd.exists():
        out["next"] = ["cleanroom init (creates the data directory, keys and database)"]
        return out
    config = dd.load()
    out["database"] = _safe_url(config.database_url or f"sqlite:///{dd.path}/cleanroom.db")
    out["site"] = {"name": config.site.name, "jurisdiction": config.site.jurisdiction,
                   "operator": config.site.operator}  # fmt: skip
    with CleanRoom.open(dd, background=False) as room:
        store = room.log.store
        cp = store.latest()
        signers = [s.name for s in parse_note(cp.note).signatures]
        out["ledger"] = {
            "origin": cp.checkpoint.origin, "size": cp.size,
            "sequenced": store.sequenced_size(), "signed_by": signers,
            "witnesses_configured": [w.vkey.split("+")[0] for w in config.witnesses],
        }  # fmt: skip
        out["records"] = room.vault.counts()
        out["releases"] = {}
        for kind in ("policy", "model", "source", "infra"):
            live = room.releases.live(kind)
            if live is not None:
                art = room.releases.get(live.artifact)
                out["releases"][kind] = {"name": art.name, "digest": art.digest,
                                         "deployed_ms": live.deployed_ms}  # fmt: skip
        _, trained = store.search(Query(type="model.trained", limit=1))
        if trained:
            doc = json.loads(trained[0][1])
            out["model"] = {"version": doc.get("model_version") or doc.get("version"),
                            "trained_ms": doc.get("at_ms"), "entry": trained[0][0]}  # fmt: skip
        principals = [p for p, _ in room.principals.list()]
        out["principals"] = len(principals)
        ingest = [
            p.name
            for p in principals
            if p.org == "platform" and p.kind == "service" and p.role == "ingest"
        ]
        if monitor_state is not None:
            out["alerts"] = _alerts(monitor_state, store)
    out["next"] = _next(out, ingest)
    return out


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _alerts(state: Path, store: Any) -> dict[str, Any]:
    from cleanroom.ledger.search import Query
    from cleanroom.oversight.alerts import AlertStore
    from cleanroom.oversight.incidents import group, latest_actions, status_of

    incidents = group(AlertStore(state).all())
    _, found = store.search(Query(type="oversight.incident", limit=500))
    actions = latest_actions(json.loads(b) for _, b in reversed(found))
    open_ = [i for i in incidents if status_of(i, actions) != "resolved"]
    return {
        "alerts": sum(len(i.alerts) for i in incidents), "incidents": len(incidents),
        "open_incidents": [{"id": i.id, "severity": i.severity, "summary": i.summary,
                            "status": status_of(i, actions)} for i in open_],
    }  # fmt: skip


def _next(doc: dict[str, Any], ingest: list[str]) -> list[str]:
    steps = []
    records = doc.get("records", {})
    if not ingest:
        steps.append("cleanroom principal add platform-ingest --org platform --role ingest "
                     "--kind service --jurisdiction " + doc["site"]["jurisdiction"])  # fmt: skip
    if not records.get("users"):
        steps.append("cleanroom load users USERS.csv (then videos, then events)")
    elif not records.get("videos"):
        steps.append("cleanroom load videos VIDEOS.csv")
    elif not records.get("events"):
        steps.append("cleanroom load events EVENTS.parquet")
    if records.get("events") and "model" not in doc:
        steps.append("cleanroom serve (the first model trains when the server starts)")
    if not doc["ledger"]["witnesses_configured"]:
        steps.append("cleanroom ledger add-witness VKEY URL (the oversight body's witness)")
    if doc["ledger"]["sequenced"] > doc["ledger"]["size"]:
        steps.append("cleanroom ledger checkpoint (entries wait for a signed checkpoint)")
    open_ = doc.get("alerts", {}).get("open_incidents")
    if open_:
        steps.append(f"{len(open_)} open incident(s): /console/oversight or "
                     "cleanroom oversight alerts --incidents")  # fmt: skip
    return steps


def status(
    monitor_state: Annotated[
        Path | None,
        typer.Option(help="the oversight monitor's state directory: its open incidents"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="everything as one JSON document")
    ] = False,
) -> None:
    """What this clean room holds and runs, at a glance: data directory,
    database, site, live releases, ledger and witnesses, records, the model,
    open incidents, and the next step when something is missing. Example:
    cleanroom status --monitor-state oversight"""
    doc = gather(monitor_state)
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    echo = typer.echo
    echo(f"data directory  {doc['data_dir']}")
    if "site" not in doc:
        echo("no clean room here yet")
    else:
        site, led, rec = doc["site"], doc["ledger"], doc["records"]
        echo(f"database        {doc['database']}")
        echo(f"site            {site['name']} ({site['jurisdiction']}), run by {site['operator']}")
        for kind, r in doc["releases"].items():
            echo(f"live {kind:<10} {r['name']} {r['digest'][:19]}… since {_when(r['deployed_ms'])}")
        pending = led["sequenced"] - led["size"]
        echo(f"ledger          {led['size']:,} entries signed"
             + (f" ({pending:,} waiting)" if pending else "")
             + f"; signed by {', '.join(led['signed_by']) or 'nobody'}")  # fmt: skip
        witnesses = ", ".join(led["witnesses_configured"]) or "none configured"
        echo(f"witnesses       {witnesses}")
        echo(f"records         {rec['users']:,} users, {rec['videos']:,} videos, "
             f"{rec['events']:,} events; {doc['principals']} principals")  # fmt: skip
        model = doc.get("model")
        echo(f"model           {model['version'][:19] + '… trained ' + _when(model['trained_ms'])}"
             if model else "model           not trained yet")  # fmt: skip
        if "alerts" in doc:
            a = doc["alerts"]
            echo(f"alerts          {a['alerts']} in {a['incidents']} incident(s), "
                 f"{len(a['open_incidents'])} not resolved")  # fmt: skip
    for step in doc["next"]:
        echo(f"next: {step}")
