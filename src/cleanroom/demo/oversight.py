"""Steps 16-25: the lone operator, the oversight body's monitor, replay and
audit, and the ledger's witnesses, proofs and tamper evidence."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from rich.panel import Panel

from cleanroom.api.serving import InProcessServer
from cleanroom.demo.narration import FLAGGED, ORIGIN, PUPPET_PAGES, console, step
from cleanroom.demo.platform import ledger_size
from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.authority import sign_boost_review
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.client import Monitor, TamperError
from cleanroom.ledger.note import generate_signer, parse_note
from cleanroom.ledger.tlogproof import verify_tlog_proof
from cleanroom.ledger.witness import AddCheckpointRequest
from cleanroom.room.config import DataDir


def lone_operator(live: InProcessServer, call: Any, watcher: Any, tokens: dict[str, str]) -> None:
    """Step 17: the operator approves a model with two of its own reviewers
    (refused), forges a review through the ledger API (refused) and then
    around it, in its own database (flagged by the monitor)."""
    from cleanroom.foryou.ranker import RankingConfig
    from cleanroom.room.bootstrap import sign_review

    step("17. The operator tries to approve a release alone and to forge the oversight's review")
    room = live.app.state.room
    tokens["ledger-writer"] = room.principals.issue_token("ledger-writer")
    second = generate_signer("oscar-ops")
    room.releases.add_reviewer("oscar-ops", "operator", second.verifier.vkey, added_by="init")
    cfg = {**RankingConfig.shipped().raw, "exploration": 0.04}
    art = call("POST", "/v1/releases", "alice-support",
               json={"kind": "model", "name": "operator's own tuning",
                     "manifest": {"config": cfg}}).json()  # fmt: skip
    artifact = room.releases.get(art["digest"])
    op_key = room.data_dir.read_key("reviewer-operator-reviewer")
    for key in (op_key, second):
        verdict = call("POST", f"/v1/releases/{art['digest']}/reviews", "oscar-ops",
                       json=sign_review(key, artifact, org="operator")).json()  # fmt: skip
    refused = httpx.post(live.url + f"/v1/releases/{art['digest']}/deploy", timeout=60,
                         headers={"Authorization": f"Bearer {tokens['oscar-ops']}"})  # fmt: skip
    why = refused.json()["detail"].rsplit("not approved: ", 1)[-1]
    console.print(
        f"two operator reviewers approve {art['digest'][:23]}…: still missing "
        f"[bold]{verdict['missing']}[/]; deploy refused: {refused.status_code} ({why})"
    )
    forged = sign_review(generate_signer("oversight-reviewer"), artifact, org="oversight")
    review = {"type": "release.review", "v": 1, "artifact": art["digest"],
              "reviewer": "oversight-reviewer", "org": "oversight", "decision": "approve",
              "envelope": forged, "at_ms": int(time.time() * 1000)}  # fmt: skip
    r = httpx.post(live.url + "/v1/ledger/entries", json=review, timeout=60,
                   headers={"Authorization": f"Bearer {tokens['ledger-writer']}"})  # fmt: skip
    console.print(f"a forged oversight review through the ledger API: {r.status_code} "
                  f"({r.json()['detail'][:72]}…)")  # fmt: skip
    # the operator owns its database: it writes the review and a deployment around the API
    room.log.append(review)
    room.log.append({"type": "release.deployed", "v": 1, "artifact": art["digest"],
                     "kind": "model", "by": "oscar-ops", "rollback": False,
                     "at_ms": int(time.time() * 1000)})  # fmt: skip
    room.log.integrate()
    for a in watcher.run_once().new_alerts:
        console.print(f"  [red]ALERT[/] {a.kind}: " + a.message.replace(art["digest"], "it"))


def oversight(live: InProcessServer, tokens: dict[str, str], state: Path, log_vkey: str) -> None:
    from cleanroom.audit.puppets import Accounts
    from cleanroom.audit.report import AuditTarget, run_audit, write_report
    from cleanroom.foryou.ranker import RankingConfig
    from cleanroom.ledger.note import parse_verifier
    from cleanroom.oversight import Watcher
    from cleanroom.room.accounts import provision

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        r = httpx.request(method, live.url + path, headers=headers, timeout=120, **kw)
        r.raise_for_status()
        return r

    room = live.app.state.room
    base = state.parent
    from cleanroom.gate import Principal

    for k in range(20, 40):  # more of the dataset's users open the app
        name = f"viewer-{k}"
        room.principals.add(Principal(name, "user", "users", "user", "US", 0, f"u{k}"))
        tokens[name] = room.principals.issue_token(name)
    step("16. The oversight body's monitor checks every entry against the rules (and witnesses)")
    # the oversight body pins its own root key (the demo made it for the oversight body)
    watcher = Watcher(live.url + "/log/", parse_verifier(log_vkey), state,
                      api_url=live.url, token=tokens["olga-oversight"],
                      oversight_vkey=room.config.oversight_vkey)  # fmt: skip
    assert watcher.witness is not None
    room.log.integrate()
    deadline = time.monotonic() + 30
    while watcher.witness.status()["cosigned_size"] < room.log.store.latest().size:
        if time.monotonic() > deadline:
            raise RuntimeError("the monitor's witness was never asked to cosign")
        time.sleep(0.1)
    report = watcher.run_once()
    console.print(
        f"monitor: {report.entries_checked:,} entries verified, every access decided again "
        f"under its released policy; {len(report.new_alerts)} alerts; as a witness it cosigned "
        f"the checkpoint of size {watcher.witness.status()['cosigned_size']:,}, consistent "
        f"with what it verified"
    )
    for a in report.new_alerts[:5]:
        console.print(f"  [red]ALERT[/] {a.kind}: {a.message}")

    lone_operator(live, call, watcher, tokens)

    step(
        "18. A declared boost: the operator declares it, the oversight body approves, feeds say so"
    )
    feed = call("GET", "/v1/feed", "viewer-20", params={"limit": 30, "seed": "b"}).json()
    video = feed["items"][-1]["video"]
    now = int(time.time() * 1000)
    body = {"video": video, "factor": 3.0, "reason": "public-health campaign",
            "label": "Promoted: public-health campaign", "start_ms": now - 1000,
            "end_ms": now + 3_600_000, "regions": ["US"]}  # fmt: skip
    boost = call("POST", "/v1/boosts", "oscar-ops", json=body).json()
    refused = httpx.post(live.url + f"/v1/boosts/{boost['id']}/review", timeout=30,
                         json={"decision": "approve"},
                         headers={"Authorization": f"Bearer {tokens['oscar-ops']}"})  # fmt: skip
    declared = call("GET", f"/v1/ledger/entries/{boost['declared_entry']}", "olga-oversight")
    signed = sign_boost_review(  # the oversight body's reviewer signs what was declared
        room.data_dir.read_key("reviewer-oversight-reviewer"), boost=boost["id"],
        declared=declared.json()["entry"], decision="approve",
    )  # fmt: skip
    call("POST", f"/v1/boosts/{boost['id']}/review", "olga-oversight",
         json={"decision": "approve", "note": "campaign checked", "envelope": signed})  # fmt: skip
    after = call("GET", "/v1/feed", "viewer-20", params={"limit": 5, "seed": "b2"}).json()
    top = after["items"][0]
    console.print(
        f"{boost['id']} of {video} declared by oscar-ops (entry {boost['ledger_index']}); "
        f"the operator approving its own boost: {refused.status_code}; approved by the oversight "
        f"body; the feed now shows {top['video']} labelled "
        f"[bold]{top.get('boost', {}).get('label')}[/] (why: {top['why'][0]['text']})"
    )
    call("POST", f"/v1/boosts/{boost['id']}/revoke", "oscar-ops", json={"reason": "campaign over"})
    console.print("the campaign ends: oscar-ops revokes the boost (on the record)")

    step("19. A hidden boost: the operator changes a ranking weight at run time, no release")
    engine = live.app.state.recommender.engine
    approved = engine.config
    creator = feed["items"][20]["creator"]
    rerank = {**approved.raw.get("rerank", {}), "creator_boosts": {creator: 3.0}}
    engine.config = RankingConfig.parse({**approved.raw, "rerank": rerank})
    for n in range(60):
        call("GET", "/v1/feed", f"viewer-{20 + n % 20}", params={"limit": 10, "seed": f"h{n}"})
    engine.config = approved  # and puts it back, hoping nobody noticed
    for n in range(60):
        call("GET", "/v1/feed", f"viewer-{20 + n % 20}", params={"limit": 10, "seed": f"a{n}"})
    room.log.integrate()
    report = watcher.run_once()
    kinds: dict[str, int] = {}
    for a in report.new_alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    console.print(f"monitor: {kinds or 'no alerts'}")
    replay, new = watcher.replay(live.url, tokens["olga-oversight"], sample=500)
    console.print(
        f"replay audit: {replay.replayed} feeds recomputed with the approved ranking, "
        f"[bold red]{replay.mismatched} differ[/] ({replay.mismatch_rate:.0%}); {len(new)} alerts, "
        f"e.g. {new[0].message if new else '-'}"
    )

    step("20. The audit report: exposure, replay, sock puppets (HTML with plots + JSON)")
    accounts_path = base / "audit-accounts.json"
    accounts_path.write_text(json.dumps(provision(room, 6)))
    verified = watcher.verified(live.url, tokens["olga-oversight"])  # the monitor vouches
    doc = run_audit(
        AuditTarget(live.url, tokens["olga-oversight"]), accounts=Accounts.read(accounts_path),
        verified=verified, n_personas=6, pages=PUPPET_PAGES, page_size=10, flagged={FLAGGED},
    )  # fmt: skip
    out = write_report(doc, base / "audit.html", state_dir=state)
    ex, pup = doc["exposure"], doc["puppets"]
    top = ex["excess_by_creator"][0] if ex["excess_by_creator"] else None
    if top:
        console.print(
            f"exposure: under the unapproved ranking {top['creator']} got "
            f"{top['share_unapproved']:.1%} of impressions vs {top['share_approved']:.1%} "
            f"under the approved one (boosted creator: {creator}); declared boosts "
            f"{ex['declared_boosts']['share']:.2%} of impressions"
        )
    console.print(
        f"replay: undeclared boosting took {doc['replay']['undeclared_boost_share']:.1%} of "
        f"head impressions in the sampled feeds"
    )
    console.print(
        f"sock puppets ({len(pup['personas'])} personas, {pup['window'] * PUPPET_PAGES} videos "
        f"each): "
        f"{pup['mean_exploit_fraction']:.0%} of recommendations match the persona's topic vs "
        f"{pup['mean_baseline_non_personalised']:.0%} non-personalised and "
        f"{pup['mean_baseline_random']:.0%} random; non-personalised feed ignores history: "
        f"{pup['non_personalised_ignores_history']['identical']}"
    )
    firsts = [p["first_flagged"]["videos_before"] for p in pup["personas"] if p["first_flagged"]]
    console.print(
        f"first exposure to the flagged topic {FLAGGED} (a stand-in: kuairec-small has no "
        f"content labels): {len(firsts)} of {len(pup['personas'])} puppets, after "
        f"{sorted(firsts)[len(firsts) // 2] if firsts else '-'} videos (median)"
    )
    console.print(f"report: [green]{base / 'audit.html'}[/] (JSON: {out})")


def ledger(server, witness, log_dir, monitor_dir, log_vkey, w_signer, m_vkey) -> None:
    from cleanroom.ledger.note import parse_verifier

    step("21. The log publishes a checkpoint of every decision; both witnesses cosign it")
    size = ledger_size(log_dir)
    deadline = time.monotonic() + 30
    note = ""
    while time.monotonic() < deadline:
        note = httpx.get(server.url + "/log/checkpoint").text
        cosigned = "oversight.example/w1" in note and "oversight.example/monitor" in note
        if parse_checkpoint(parse_note(note).text).size == size and cosigned:
            break
        time.sleep(0.1)
    console.print(Panel(note.rstrip(), title="GET /log/checkpoint"))

    step("22. An outside monitor verifies over HTTP with pinned keys and a quorum of 2")
    monitor = Monitor(
        server.url + "/log/",
        parse_verifier(log_vkey),
        monitor_dir,
        witnesses=[w_signer.verifier, m_vkey],
        quorum=2,
    )
    report = monitor.verify()
    console.print(
        f"[green]verified[/]: size {report.size}, root {report.root}, "
        f"{report.entries_checked} entries re-hashed from the entry bundles, "
        f"cosigned by {', '.join(report.cosigners)}"
    )

    step("23. Anyone checks one entry's inclusion offline (C2SP tlog-proof)")
    proof_text = httpx.get(server.url + "/v1/ledger/proofs/inclusion", params={"index": 42}).text
    entry_body = httpx.get(server.url + "/v1/ledger/entries/42").json()["entry"]
    console.print(f"entry 42: {entry_body['type']} by {entry_body.get('principal')}")
    from cleanroom.ledger.entries import canonical_json

    cp, _ = verify_tlog_proof(
        proof_text, canonical_json(entry_body), parse_verifier(log_vkey), [w_signer.verifier], 1
    )
    console.print(proof_text.split("\n\n")[0])
    console.print(f"[green]entry 42 is included[/] in the cosigned tree of size {cp.size}")

    step("24. A forked checkpoint (signed with the log key) is refused by the witness")
    fork = MemoryTree()
    for i in range(size + 5):
        fork.append(f"forged {i}".encode())
    dd = DataDir(log_dir)
    forged = sign_note(Checkpoint(ORIGIN, size + 5, fork.root()).text(), [dd.read_key("log")])
    req = AddCheckpointRequest(size, fork.consistency_proof(size), forged)
    resp = httpx.post(witness.url + "/witness/add-checkpoint", content=req.encode())
    console.print(
        f"witness answered [bold]{resp.status_code}[/]: {resp.json().get('detail', resp.text)}"
    )

    step("25. An insider edits two stored decisions; a full audit by the monitor catches it")
    con = sqlite3.connect(log_dir / "cleanroom.db")
    denied = [
        idx
        for idx, body in con.execute("SELECT idx, body FROM ledger_entries ORDER BY idx")
        if b'"decision":"deny"' in body
    ]
    for idx in denied[:2]:
        (body,) = con.execute("SELECT body FROM ledger_entries WHERE idx = ?", (idx,)).fetchone()
        forged = body.replace(b'"decision":"deny"', b'"decision":"allow"')
        con.execute("UPDATE ledger_entries SET body = ? WHERE idx = ?", (forged, idx))
        console.print(f"entry {idx}: a denied access rewritten as allowed in the database file")
    con.commit()
    con.close()
    try:
        monitor.verify(full=True)
        console.print("[red]tampering was NOT detected")
        raise SystemExit(1)
    except TamperError as exc:
        console.print(f"[bold red]monitor alert[/]: {exc.message}")
    console.rule("[bold green]demo complete")
