"""``cleanroom ledger`` and ``cleanroom witness``: the transparency log and
the C2SP witness the oversight body runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cleanroom.cli.common import data_directory, fail, open_log, run_server
from cleanroom.cli.help import group
from cleanroom.ledger.errors import LedgerError
from cleanroom.room.config import Config, WitnessRef

ledger_app = group(
    help="The transparency ledger. Example: cleanroom ledger search --type 'access.*' "
    "--since 2026-12-01 --principal alice-support"
)
witness_app = group(
    help="A C2SP tlog-witness run by the oversight body. Example: cleanroom witness init "
    "--name oversight.example/w1, then cleanroom witness trust ORIGIN VKEY"
)


@ledger_app.command("append")
def ledger_append(
    publish: Annotated[bool, typer.Option(help="sign a checkpoint covering them")] = True,
) -> None:
    """Append entries: one JSON object per line on stdin; prints each index.
    Types the clean room's components write (access, release.*, boost.* …)
    are reserved and refused, as by the API."""
    from cleanroom.ledger.entries import parse_entry_json, reserved_type

    bodies = []
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            bodies.append(parse_entry_json(line))
        except LedgerError as exc:
            fail(f"line {n}: {exc}")
        etype = json.loads(bodies[-1])["type"]
        if reserved_type(etype):
            fail(f"line {n}: entry type {etype!r} is reserved for the clean room's components")
    if not bodies:
        fail("no entries on stdin (one JSON object per line)")
    with open_log() as log:
        indices = log.append_many(bodies)
        if publish:
            log.integrate()
    for i in indices:
        typer.echo(i)


@ledger_app.command("get")
def ledger_get(index: int) -> None:
    """Print the entry at INDEX (canonical JSON)."""
    with open_log() as log:
        typer.echo(log.store.entry(index).decode())


@ledger_app.command("proof")
def ledger_proof(
    index: int,
    size: Annotated[int | None, typer.Option(help="tree size (a signed checkpoint)")] = None,
    consistency: Annotated[
        int | None, typer.Option(help="instead: consistency proof from this old size")
    ] = None,
) -> None:
    """Print a C2SP tlog-proof of entry INDEX (or a consistency proof, one hash per line)."""
    from cleanroom.ledger.hashing import b64
    from cleanroom.ledger.tlogproof import TlogProof

    with open_log() as log:
        store = log.store
        if consistency is not None:
            for p in store.consistency_proof(consistency, size):
                typer.echo(b64(p))
            return
        cp = store.latest() if size is None else store.checkpoint_at(size)
        proof = store.inclusion_proof(index, cp.size)
        typer.echo(TlogProof(index, proof, cp.note).render(), nl=False)


@ledger_app.command("search")
def ledger_search(
    type_: Annotated[
        str | None,
        typer.Option("--type", help="an entry type, or a namespace ending in .* (access.*)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="from this time: ms since epoch or ISO 8601 (UTC)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="before this time: ms since epoch or ISO 8601 (UTC)")
    ] = None,
    principal: Annotated[str | None, typer.Option(help="the principal an entry names")] = None,
    subject: Annotated[str | None, typer.Option(help="a subject commitment it lists")] = None,
    limit: Annotated[int, typer.Option(help="entries per page (1-500)")] = 50,
    cursor: Annotated[str | None, typer.Option(help="the next page (printed after a page)")] = None,
    url: Annotated[
        str | None, typer.Option(help="search a running server (its base URL) instead")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per entry, with its proof")
    ] = False,
) -> None:
    """Find ledger entries by type, time range, principal or subject commitment,
    newest first (only entries the latest checkpoint covers). Example:
    cleanroom ledger search --type 'access.*' --since 2026-12-01 --principal sam-support"""
    from cleanroom.api.pages import before_cursor, cursor_before
    from cleanroom.ledger.search import Query, search_page, time_ms_of

    params = {
        "type": type_,
        "since_ms": time_ms_of(since, "--since") if since else None,
        "until_ms": time_ms_of(until, "--until") if until else None,
        "principal": principal,
        "subject": subject,
    }
    if url is not None:
        page = _remote_search(url, params, limit, cursor, as_json)
    else:
        q = Query(**params, after=cursor_before(cursor) if cursor else None, limit=limit)
        with open_log() as log:
            page = search_page(log.store, q, proofs=as_json)
        page["next_cursor"] = before_cursor(page["before"])
    _print_search(page, as_json)


def _remote_search(url: str, params: dict, limit: int, cursor: str | None, proofs: bool) -> dict:
    import httpx

    query = {k: v for k, v in params.items() if v is not None}
    query.update(limit=limit, proofs=str(proofs).lower())
    if cursor:
        query["cursor"] = cursor
    try:
        r = httpx.get(url.rstrip("/") + "/v1/ledger/entries", params=query, timeout=60)
    except httpx.HTTPError as e:
        fail(f"cannot reach {url}: {e}")
    if r.status_code != 200:
        detail = (
            r.json().get("detail", r.text)
            if "json" in r.headers.get("content-type", "")
            else r.text
        )
        fail(f"{url} refused the search ({r.status_code}): {detail}")
    return r.json()


def _print_search(page: dict, as_json: bool) -> None:
    from datetime import UTC, datetime

    from cleanroom.ledger.search import entry_principal, entry_summary, entry_time_ms

    cp = page["checkpoint"]
    if as_json:
        for item in page["items"]:
            typer.echo(json.dumps({**item, "checkpoint_size": cp["size"]}, sort_keys=True))
    else:
        from rich.table import Table

        from cleanroom.cli.common import table_console

        table = Table("index", "time (UTC)", "type", "principal", "summary")
        for item in page["items"]:
            e = item["entry"]
            t = entry_time_ms(e)
            when = datetime.fromtimestamp(t / 1000, UTC).strftime("%F %T") if t else ""
            who = entry_principal(e) or ""
            table.add_row(str(item["index"]), when, str(e.get("type", "")), who, entry_summary(e))
        table_console().print(table)
        typer.echo(f"{len(page['items'])} entries, proved against checkpoint size {cp['size']}")
    if page.get("next_cursor"):
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    publish: Annotated[bool, typer.Option(help="integrate pending entries first")] = True,
) -> None:
    """Print the latest signed checkpoint (integrating pending entries first)."""
    with open_log() as log:
        if publish:
            log.integrate()
        typer.echo(log.store.latest().note, nl=False)


@ledger_app.command("verify")
def ledger_verify(
    url: Annotated[
        str | None, typer.Option(help="log prefix, e.g. http://127.0.0.1:8080/log/")
    ] = None,
    vkey: Annotated[str | None, typer.Option(help="the log's verifier key (pinned)")] = None,
    witness: Annotated[list[str] | None, typer.Option(help="a pinned witness vkey")] = None,
    quorum: Annotated[int, typer.Option(help="witness cosignatures required")] = 0,
    state_dir: Annotated[Path | None, typer.Option(help="monitor state directory")] = None,
    full: Annotated[bool, typer.Option(help="recompute the tree from entry 0")] = False,
    proof: Annotated[Path | None, typer.Option(help="offline: a tlog-proof file")] = None,
    entry: Annotated[Path | None, typer.Option(help="offline: the entry the proof is for")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify the log as an outside monitor over HTTP, or a tlog-proof offline.
    Exit code 1 when the log or the proof does not verify (tampered entries, an
    inconsistent checkpoint, a proof or signature that fails); 2 on bad input."""
    from cleanroom.ledger.client import TamperError
    from cleanroom.ledger.errors import (
        InconsistencyError,
        ProofError,
        SignatureError,
    )
    from cleanroom.ledger.note import parse_verifier

    if vkey is None:
        dd = data_directory()
        vkey = dd.read_key("log").verifier.vkey if dd.has_key("log") else None
        if vkey is None:
            fail("--vkey is required (the log's verifier key)")
    log_key = parse_verifier(vkey)
    witnesses = [parse_verifier(w) for w in witness or []]
    if proof is not None:
        from cleanroom.ledger.tlogproof import verify_tlog_proof

        if entry is None:
            fail("--entry is required with --proof")
        try:
            cp, _note = verify_tlog_proof(
                proof.read_text(), entry.read_bytes().rstrip(b"\n"), log_key, witnesses, quorum
            )
        except (ProofError, SignatureError) as e:
            typer.echo(f"problem: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"ok: entry is in {cp.origin} at size {cp.size}")
        return
    if url is None:
        fail("--url is required (the log prefix) unless --proof is given")
    from rich.progress import Progress

    from cleanroom.ledger.client import Monitor

    monitor = Monitor(
        url,
        log_key,
        state_dir or (data_directory().path / "monitor"),
        witnesses=witnesses,
        quorum=quorum,
    )
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("verifying entries", total=None)
        try:
            report = monitor.verify(
                full=full,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (TamperError, InconsistencyError, SignatureError) as e:
            typer.echo(f"problem: {e}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.__dict__))
        return
    typer.echo(
        f"ok: {report.origin} size {report.old_size} -> {report.size}, root {report.root}, "
        f"{report.entries_checked} entries rehashed, cosigned by {report.cosigners or 'nobody'}"
    )
    for w in report.warnings:
        typer.echo(f"warning: {w}")


@ledger_app.command("add-witness")
def ledger_add_witness(vkey: str, url: str) -> None:
    """Ask the witness at URL (its submission prefix) to cosign every new checkpoint."""
    from cleanroom.ledger.witness import WitnessEndpoint

    WitnessEndpoint.parse(vkey, url)
    dd = data_directory()
    config = dd.load()
    config.witnesses = [w for w in config.witnesses if w.vkey != vkey]
    config.witnesses.append(WitnessRef(vkey, url.rstrip("/")))
    dd.save(config)
    typer.echo(f"witness {vkey.split('+')[0]} at {url} added; restart the server to use it")


# --------------------------------------------------------------------------- witness


@witness_app.command("init")
def witness_init(
    name: Annotated[str, typer.Option(help="witness key name, e.g. oversight.example/w1")],
) -> None:
    """Create this data directory's witness key; prints its verifier key."""
    from cleanroom.ledger.note import ALG_COSIGNATURE_V1, generate_signer
    from cleanroom.ledger.witness import Witness

    dd = data_directory()
    if not dd.exists():
        dd.save(Config())
    if not dd.has_key("witness"):
        dd.write_key("witness", generate_signer(name, ALG_COSIGNATURE_V1))
    signer = dd.read_key("witness")
    db = dd.database()
    try:
        Witness(db, signer)
    finally:
        db.dispose()
    typer.echo(signer.verifier.vkey)


def _witness():
    from cleanroom.ledger.witness import Witness

    dd = data_directory()
    return Witness(dd.database(), dd.read_key("witness"))


@witness_app.command("trust")
def witness_trust(origin: str, vkey: str) -> None:
    """Trust the log ORIGIN signed by VKEY."""
    w = _witness()
    w.trust_log(origin, [vkey])
    typer.echo(f"trusting {origin}")


@witness_app.command("status")
def witness_status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Trusted logs, the latest cosigned size of each, and evidence kept."""
    from cleanroom.ledger.checkpoint import parse_checkpoint
    from cleanroom.ledger.note import parse_note
    from cleanroom.ledger.witness import origin_hash

    w = _witness()
    logs = {}
    for origin in w.logs():
        note = w.latest(origin_hash(origin))
        logs[origin] = parse_checkpoint(parse_note(note).text).size if note else None
    evidence = w.evidence()
    if as_json:
        typer.echo(json.dumps({"logs": logs, "evidence": evidence}, indent=2, default=str))
        return
    for origin, size in logs.items():
        typer.echo(f"{origin}: {size if size is not None else 'never cosigned'}")
    for ev in evidence:
        typer.echo(f"evidence: {ev['origin']} {ev['received_at']}: {ev['reason']}")


@witness_app.command("serve")
def witness_serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8081,
) -> None:
    """Serve the witness at http://HOST:PORT/witness/ (add-checkpoint)."""
    dd = data_directory()
    dd.read_key("witness")
    run_server(dd, "cleanroom.api.app:witness_app_from_env", host, port)
