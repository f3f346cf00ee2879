"""The public transparency center and the ledger browser (no sign-in).

Everything here is read from what the clean room publishes anyway — the
ledger, its signed checkpoint, the live releases, the published ranking
weights — and every number links to the ledger entries behind it, each of
which the browser can check against the signed checkpoint (``console.js``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from cleanroom.api.console.web import page
from cleanroom.api.pages import before_cursor, cursor_before
from cleanroom.ledger.hashing import b64, leaf_hash
from cleanroom.ledger.note import parse_note
from cleanroom.ledger.search import (
    MAX_PAGE,
    entry_principal,
    entry_summary,
    entry_time_ms,
    search_page,
    time_ms_of,
)
from cleanroom.ledger.search import (
    Query as SearchQuery,
)

router = APIRouter(include_in_schema=False)
MAX_INDEX = 2**53
RELEASE_KINDS = ("model", "policy", "source", "infra")


def _store(request: Request) -> Any:
    return request.app.state.log.store


def _recent(store: Any, etype: str, limit: int = MAX_PAGE) -> list[dict[str, Any]]:
    """The newest entries of a type (or namespace ``x.*``), each with its index."""
    _, found = store.search(SearchQuery(type=etype, limit=limit))
    return [{"index": i, **json.loads(body)} for i, body in found]


def _checkpoint(request: Request) -> dict[str, Any]:
    """The latest signed checkpoint: its note, size, root, and who signed it
    (the log and each witness, named by the keys the clean room is configured with)."""
    room = request.app.state.room
    cp = room.log.store.latest()
    note = parse_note(cp.note)
    witnesses = {w.vkey.split("+")[0]: w.vkey for w in room.config.witnesses}
    log_vkey = room.log.store.verifier.vkey
    signers = []
    for sig in note.signatures:
        if sig.name == cp.checkpoint.origin or log_vkey.startswith(sig.name + "+"):
            role, vkey = "log", log_vkey
        else:
            role, vkey = "witness", witnesses.get(sig.name, "")
        signers.append({"name": sig.name, "role": role, "vkey": vkey, "time": sig.timestamp})
    return {
        "note": cp.note, "size": cp.size, "root": b64(cp.root), "origin": cp.checkpoint.origin,
        "log_vkey": log_vkey, "signers": signers,
        "witness_vkeys": list(witnesses.values()),
    }  # fmt: skip


def _releases(room: Any) -> list[dict[str, Any]]:
    reg = room.releases
    out = []
    for kind in RELEASE_KINDS:
        live = reg.live(kind)
        if live is None:
            continue
        art = reg.get(live.artifact)
        out.append({
            "kind": kind, "name": art.name, "digest": art.digest,
            "submitted_by": art.submitted_by, "org": art.org,
            "deployed_ms": live.deployed_ms, "deployed_by": live.by,
            "deployed_entry": live.ledger_index, "submitted_entry": art.ledger_index,
            "reviews": [r.__dict__ for r in reg.reviews(art.digest)],
            "verdict": reg.verdict(art.digest).to_dict(),
        })  # fmt: skip
    return out


def _flows(store: Any, total: int) -> dict[str, Any]:
    """Flows by destination and data class: the latest (at most a page of the
    search) out of ``total`` on the ledger."""
    flows = _recent(store, "egress.flow")
    by_dest: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    refused = 0
    for f in flows:
        by_dest[str(f.get("country", "?"))] += 1
        by_class[str(f.get("data_class", "?"))] += 1
        refused += f.get("decision") in ("refuse", "deny")
    return {"count": len(flows), "total": total, "refused": refused,
            "by_destination": by_dest.most_common(), "by_class": by_class.most_common(),
            "recent": flows[:10]}  # fmt: skip


def _deletions(store: Any) -> dict[str, Any]:
    """Deletion orders from the ledger — done (with when) or pending (with
    the deadline) — and the users deleted at their own request."""
    done = {str(e.get("order")): e for e in _recent(store, "deletion.done")}
    orders = []
    for o in _recent(store, "deletion.order"):
        d = done.get(str(o.get("order")))
        orders.append(
            {**o, "done": d, "late": bool(d and d.get("time_ms", 0) > o.get("deadline_ms", 0))}
        )
    receipts = _recent(store, "deletion")
    return {
        "orders": orders[:20], "done": sum(1 for o in orders if o["done"]),
        "pending": sum(1 for o in orders if not o["done"]),
        "late": sum(1 for o in orders if o["late"]),
        "receipts": len(receipts), "self": sum(1 for r in receipts if r.get("order") is None),
    }  # fmt: skip


def _model(request: Request) -> dict[str, Any]:
    rec = getattr(request.app.state, "recommender", None)
    if rec is None or not rec.ready.is_set():
        return {"ready": False}
    cfg = rec.engine.config
    weights = cfg.to_dict()
    return {
        "ready": True, "card": rec.engine.model.describe(), "trained": rec.trained,
        "config_digest": cfg.digest(), "about": cfg.raw.get("about", ""),
        "weights": weights,
    }  # fmt: skip


@router.get("/console", response_class=HTMLResponse)
def center(request: Request) -> HTMLResponse:
    """The transparency center: model, releases, checkpoint, flows, deletions, boosts."""
    room = request.app.state.room
    store = room.log.store
    _, counts = store.counts_by_type()
    namespaces: Counter[str] = Counter()
    for etype, n in counts.items():
        namespaces[etype.split(".", 1)[0]] += n
    boosts = Counter({k: v for k, v in counts.items() if k.startswith("boost.")})
    return page(
        request, "center.html",
        model=_model(request), releases=_releases(room), checkpoint=_checkpoint(request),
        flows=_flows(store, counts.get("egress.flow", 0)), deletions=_deletions(store),
        boosts=boosts.most_common(),
        recent_boosts=_recent(store, "boost.*", 10), namespaces=namespaces.most_common(),
        total=sum(counts.values()),
    )  # fmt: skip


TypeFilter = Annotated[str | None, Query(max_length=200)]


@router.get("/console/ledger", response_class=HTMLResponse)
def ledger(
    request: Request,
    type: TypeFilter = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    principal: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    """Browse the ledger: filters, newest first, a cursor for older entries."""
    filters = {"type": type or None, "since": since or None, "until": until or None,
               "principal": principal or None, "subject": subject or None}  # fmt: skip
    before = cursor_before(cursor) if cursor else None
    q = SearchQuery(
        type=filters["type"],
        since_ms=time_ms_of(since, "since") if since else None,
        until_ms=time_ms_of(until, "until") if until else None,
        principal=filters["principal"], subject=filters["subject"], after=before, limit=50,
    )  # fmt: skip
    found = search_page(_store(request), q)
    rows = [
        {"index": it["index"], "type": it["entry"].get("type", ""),
         "time": entry_time_ms(it["entry"]), "principal": entry_principal(it["entry"]),
         "summary": entry_summary(it["entry"], 90)}
        for it in found["items"]
    ]  # fmt: skip
    nxt = before_cursor(found["before"])
    keep = {k: v for k, v in filters.items() if v}
    return page(request, "ledger.html", rows=rows, filters=filters, keep=keep,
                next_cursor=nxt, checkpoint=found["checkpoint"])  # fmt: skip


@router.get("/console/ledger/{index}", response_class=HTMLResponse)
def entry(request: Request, index: Annotated[int, Path(ge=0, le=MAX_INDEX)]) -> HTMLResponse:
    """One entry, pretty-printed, with its inclusion proof against the latest
    checkpoint (checked in the browser)."""
    store = _store(request)
    cp = store.latest()
    body = store.entry(index)
    covered = index < cp.size
    proof = [b64(h) for h in store.inclusion_proof(index, cp.size)] if covered else []
    doc = json.loads(body)
    return page(
        request, "entry.html", index=index, entry=doc, pretty=json.dumps(doc, indent=2),
        body=body.decode(), leaf_hash=b64(leaf_hash(body)), proof=proof, covered=covered,
        checkpoint=_checkpoint(request),
    )  # fmt: skip
