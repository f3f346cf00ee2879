"""``make demo``: a clean room's ledger end to end, on the embedded default.

Init a clean room, start the log server and an independent witness, append
entries over HTTP, publish a checkpoint the witness cosigns, verify as an
outside monitor over HTTP, check one inclusion proof offline, show the witness
refusing a forked checkpoint, then tamper with a stored entry and show the
monitor catch it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress

from cleanroom.config import Config, DataDir, WitnessRef
from cleanroom.ledger import MemoryTree, commitment, sign_note
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.client import Monitor, TamperError
from cleanroom.ledger.note import ALG_COSIGNATURE_V1, generate_signer, parse_note
from cleanroom.ledger.store import LedgerStore
from cleanroom.ledger.tlogproof import verify_tlog_proof
from cleanroom.ledger.witness import AddCheckpointRequest, Witness
from cleanroom.servers import ServerProcess

console = Console()
ORIGIN = "cleanroom.example/log"
N_ENTRIES = 2000


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _entries(n: int) -> list[dict]:
    salt = os.urandom(32)
    kinds = ["allow", "deny"]
    return [
        {
            "type": "access.decision",
            "v": 1,
            "principal": f"svc:recommender-{i % 3}",
            "action": "events.read",
            "resource_class": "events",
            "subject": commitment(salt, f"user-{i % 97}"),
            "purpose": "recommendation",
            "policy_version": "2026-11-01",
            "outcome": kinds[i % 11 == 0],
        }
        for i in range(n)
    ]


async def _append_all(url: str, entries: list[dict], progress: Progress) -> list[int]:
    task = progress.add_task("appending over HTTP", total=len(entries))
    sem = asyncio.Semaphore(64)
    out: list[int] = [0] * len(entries)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int, e: dict) -> None:
            async with sem:
                r = await client.post("/v1/ledger/entries", json=e)
                r.raise_for_status()
                out[i] = r.json()["index"]
                progress.advance(task)

        await asyncio.gather(*(one(i, e) for i, e in enumerate(entries)))
    return out


def run_demo(keep: bool = False) -> None:
    base = Path(".cleanroom/demo").resolve()
    shutil.rmtree(base, ignore_errors=True)
    log_dir, witness_dir, monitor_dir = base / "operator", base / "witness", base / "monitor"

    _step("1. The operator initialises a clean room (SQLite + local keys)")
    dd = DataDir(log_dir)
    dd.save(Config(origin=ORIGIN))
    log_signer = generate_signer(ORIGIN)
    dd.write_key("log", log_signer)
    db = dd.database()
    LedgerStore(db, ORIGIN, log_signer).init()
    db.dispose()
    log_vkey = log_signer.verifier.vkey
    console.print(f"log verifier key: [green]{log_vkey}")

    _step("2. The oversight body runs its own witness and pins the log's key")
    wd = DataDir(witness_dir)
    wd.save(Config(origin="oversight.example/witness"))
    w_signer = generate_signer("oversight.example/w1", ALG_COSIGNATURE_V1)
    wd.write_key("witness", w_signer)
    wdb = wd.database()
    Witness(wdb, w_signer).trust_log(ORIGIN, [log_vkey])
    wdb.dispose()
    console.print(f"witness verifier key: [green]{w_signer.verifier.vkey}")

    witness = ServerProcess(witness_dir, witness_only=True).wait_ready()
    config = dd.load()
    config.witnesses = [WitnessRef(w_signer.verifier.vkey, witness.url + "/witness")]
    dd.save(config)
    server = ServerProcess(log_dir).wait_ready()
    try:
        _demo_body(server, witness, log_dir, monitor_dir, log_vkey, w_signer)
    finally:
        server.stop()
        witness.stop()
        note = "kept" if keep else "left for inspection until the next run"
        console.print(f"(demo data in {base}: {note})")


def _demo_body(server, witness, log_dir, monitor_dir, log_vkey, w_signer) -> None:
    from cleanroom.ledger.note import parse_verifier

    _step(f"3. The platform appends {N_ENTRIES} access decisions over HTTP")
    entries = _entries(N_ENTRIES)
    t0 = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        indices = asyncio.run(_append_all(server.url, entries, progress))
    dt = time.perf_counter() - t0
    console.print(
        f"{len(indices)} entries durably appended in {dt:.2f} s "
        f"({len(indices) / dt:,.0f}/s, 64 concurrent clients); "
        f"indices {min(indices)}..{max(indices)}"
    )

    _step("4. The log publishes a checkpoint; the witness cosigns it")
    deadline = time.monotonic() + 20
    note = ""
    while time.monotonic() < deadline:
        note = httpx.get(server.url + "/log/checkpoint").text
        if (
            parse_checkpoint(parse_note(note).text).size == N_ENTRIES
            and "oversight.example/w1" in note
        ):
            break
        time.sleep(0.1)
    console.print(Panel(note.rstrip(), title="GET /log/checkpoint"))

    _step("5. An outside monitor verifies over HTTP with pinned keys and a quorum of 1")
    monitor = Monitor(
        server.url + "/log/",
        parse_verifier(log_vkey),
        monitor_dir,
        witnesses=[w_signer.verifier],
        quorum=1,
    )
    report = monitor.verify()
    console.print(
        f"[green]verified[/]: size {report.size}, root {report.root}, "
        f"{report.entries_checked} entries re-hashed from the entry bundles, "
        f"cosigned by {', '.join(report.cosigners)}"
    )

    _step("6. Anyone checks one entry's inclusion offline (C2SP tlog-proof)")
    proof_text = httpx.get(server.url + "/v1/ledger/proofs/inclusion", params={"index": 42}).text
    entry_body = httpx.get(server.url + "/v1/ledger/entries/42").json()["entry"]
    from cleanroom.ledger.entries import canonical_json

    cp, _ = verify_tlog_proof(
        proof_text, canonical_json(entry_body), parse_verifier(log_vkey), [w_signer.verifier], 1
    )
    console.print(proof_text.split("\n\n")[0])
    console.print(f"[green]entry 42 is included[/] in the cosigned tree of size {cp.size}")

    _step("7. A forked checkpoint (signed with the log key) is refused by the witness")
    fork = MemoryTree()
    for i in range(N_ENTRIES + 5):
        fork.append(f"forged {i}".encode())
    dd = DataDir(log_dir)
    forged = sign_note(Checkpoint(ORIGIN, N_ENTRIES + 5, fork.root()).text(), [dd.read_key("log")])
    req = AddCheckpointRequest(N_ENTRIES, fork.consistency_proof(N_ENTRIES), forged)
    resp = httpx.post(witness.url + "/witness/add-checkpoint", content=req.encode())
    console.print(
        f"witness answered [bold]{resp.status_code}[/]: {resp.json().get('detail', resp.text)}"
    )

    _step("8. An insider edits two stored entries; a full audit by the monitor catches it")
    con = sqlite3.connect(log_dir / "cleanroom.db")
    for idx in (1100, 1101):
        (body,) = con.execute("SELECT body FROM ledger_entries WHERE idx = ?", (idx,)).fetchone()
        old, new = ("allow", "deny") if b'"outcome":"allow"' in body else ("deny", "allow")
        forged = body.replace(f'"outcome":"{old}"'.encode(), f'"outcome":"{new}"'.encode())
        con.execute("UPDATE ledger_entries SET body = ? WHERE idx = ?", (forged, idx))
        console.print(f"entry {idx}: outcome {old!r} rewritten to {new!r} in the database file")
    con.commit()
    con.close()
    try:
        monitor.verify(full=True)
        console.print("[red]tampering was NOT detected")
        raise SystemExit(1)
    except TamperError as exc:
        console.print(f"[bold red]monitor alert[/]: {exc.message}")
    console.rule("[bold green]demo complete")
