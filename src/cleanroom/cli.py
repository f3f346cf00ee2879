"""The ``cleanroom`` command: init, serve, demo, and one verb per part."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import ClickException

    NoArgsIsHelpError = ClickException  # type: ignore[misc,assignment]

from cleanroom.cli_audit import audit_app
from cleanroom.cli_oversight import oversight_app
from cleanroom.cli_release import release_app
from cleanroom.cli_screen import screen_app
from cleanroom.config import (
    DEFAULT_JURISDICTION,
    DEFAULT_OPERATOR,
    DEFAULT_ORIGIN,
    Config,
    DataDir,
    ResidencyConfig,
    SiteConfig,
    WitnessRef,
)
from cleanroom.errors import CleanroomError
from cleanroom.ledger.errors import LedgerError

if TYPE_CHECKING:
    from cleanroom.ledger.log import Log

app = typer.Typer(
    help="Cleanroom: a verifiable clean room (ledger, witness, monitor).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="The transparency ledger.", no_args_is_help=True)
witness_app = typer.Typer(
    help="A C2SP tlog-witness run by the oversight body.", no_args_is_help=True
)
principal_app = typer.Typer(help="Principals and their API tokens.", no_args_is_help=True)
deletion_app = typer.Typer(help="Deletion orders.", no_args_is_help=True)
policy_app = typer.Typer(help="Cedar policy sets of the gate.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.add_typer(principal_app, name="principal")
app.add_typer(deletion_app, name="deletion")
app.add_typer(policy_app, name="policy")
app.add_typer(release_app, name="release")
app.add_typer(screen_app, name="screen")
app.add_typer(oversight_app, name="oversight")
app.add_typer(audit_app, name="audit")


class State:
    data_dir: str | None = None


state = State()


def _version(value: bool) -> None:
    if value:
        from cleanroom import __version__

        typer.echo(f"cleanroom {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    data_dir: Annotated[
        str | None,
        typer.Option("--data-dir", envvar="CLEANROOM_DATA_DIR", help="data directory"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    state.data_dir = data_dir
    if data_dir:
        os.environ["CLEANROOM_DATA_DIR"] = str(Path(data_dir).resolve())


def _dd() -> DataDir:
    return DataDir(state.data_dir)


def _fail(message: str) -> None:
    raise CleanroomError(message)


def table_console() -> Any:
    """A rich console for tables: the terminal's width on a terminal; piped or
    redirected, wide enough that no cell is cut."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=100_000)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CleanroomError(f"cannot read the {what} {path}: {e.strerror}") from None


# --------------------------------------------------------------------------- init / serve


@app.command()
def init(
    origin: Annotated[str, typer.Option(help="checkpoint origin line / log key name")] = (
        DEFAULT_ORIGIN
    ),
    database_url: Annotated[
        str | None, typer.Option(help="database URL (default: SQLite in the data dir)")
    ] = None,
    jurisdiction: Annotated[
        str, typer.Option(help="jurisdiction of this site and of the users it serves")
    ] = DEFAULT_JURISDICTION,
    operator: Annotated[str, typer.Option(help="the trusted operator running this site")] = (
        DEFAULT_OPERATOR
    ),
    site: Annotated[str, typer.Option(help="name of this storage site")] = "site-1",
    oversight_vkey: Annotated[
        str | None,
        typer.Option(
            help="the oversight body's root public key (from `cleanroom oversight root-init`); "
            "without it a development root key is made in the data directory"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="what was made, as JSON")] = False,
) -> None:
    """Create the data directory, the log signing key, the keyring and the system
    principals; pin the oversight body's root key; print the log's verifier key."""
    from cleanroom.ledger.note import check_key_name, generate_signer
    from cleanroom.ledger.store import LedgerStore

    check_key_name(origin)
    dd = _dd()
    if dd.exists():
        config = dd.load()
        if config.origin != origin and origin != DEFAULT_ORIGIN:
            _fail(f"{dd.path} already holds the log {config.origin!r}")
    else:
        from cleanroom.vault.model import check_jurisdiction

        check_jurisdiction(jurisdiction)
        if oversight_vkey is not None:
            from cleanroom.ledger.authority import root_verifier

            root_verifier(oversight_vkey)  # a malformed key is refused before anything
        config = Config(
            origin=origin,
            database_url=database_url,
            site=SiteConfig(site, jurisdiction, operator),
            residency=ResidencyConfig([jurisdiction], [operator]),
            oversight_vkey=oversight_vkey,
        )
        dd.save(config)
    if not dd.has_key("log"):
        dd.write_key("log", generate_signer(config.origin))
    signer = dd.read_key("log")
    db = dd.database(config)
    try:
        cp = LedgerStore(db, config.origin, signer).init()
    finally:
        db.dispose()
    from cleanroom.deployment import bootstrap
    from cleanroom.room import CleanRoom

    # the keyring, the system principals, the first releases and the bundled
    # restricted-party lists (all on the record)
    with CleanRoom.open(dd, background=False) as room:
        bootstrapped = bootstrap(room, dd)
        room.screening.ensure_bundled(by="init")
        room.log.integrate()
        live = [k for k in ("policy", "model") if room.releases.live(k) is not None]
        oversight_vkey = room.config.oversight_vkey
    if as_json:
        typer.echo(json.dumps({
            "data_dir": str(dd.path), "site": config.site.name,
            "jurisdiction": config.site.jurisdiction, "operator": config.site.operator,
            "origin": config.origin, "tree_size": cp.size, "log_vkey": signer.verifier.vkey,
            "oversight_vkey": oversight_vkey, "bootstrapped": bootstrapped,
            "live": live,
        }, indent=2))  # fmt: skip
        return
    typer.echo(f"data directory: {dd.path}")
    typer.echo(
        f"site: {config.site.name} ({config.site.jurisdiction}, run by {config.site.operator})"
    )
    typer.echo(f"log origin: {config.origin} (tree size {cp.size})")
    if bootstrapped:
        if len(live) == 2:
            typer.echo(
                "first releases: reviewers operator-reviewer and oversight-reviewer "
                f"(keys in {dd.keys}), shipped policy set and model configuration approved "
                "and deployed (a development oversight root key: keys/oversight-root.key)"
            )
        else:
            typer.echo(
                "first releases: the shipped policy set and model configuration are approved by "
                "operator-reviewer and wait for the oversight body (its root key is pinned): it "
                "registers a reviewer with a root statement and approves them; then `cleanroom "
                "release deploy` them and the server starts"
            )
    typer.echo(signer.verifier.vkey)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    workers: Annotated[int, typer.Option(help="server processes")] = 1,
) -> None:
    """Serve the log at http://HOST:PORT/log/, the ledger API, the witness and /healthz."""
    dd = _dd()
    dd.load()
    _run_server(dd, "cleanroom.api.app:app_from_env", host, port, workers)


def _run_server(dd: DataDir, factory: str, host: str, port: int, workers: int = 1) -> None:
    """uvicorn on an app factory that finds the data directory in the environment."""
    import uvicorn

    os.environ["CLEANROOM_DATA_DIR"] = str(dd.path)
    if workers > 1:  # the workers find each other (the replay audit reaches every one)
        os.environ["CLEANROOM_PEERS"] = "1"
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="warning")


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep the demo data directory")] = False,
) -> None:
    """Run the end-to-end demonstration on the embedded default (SQLite, local keys)."""
    from cleanroom.demo import run_demo

    run_demo(keep=keep)


# --------------------------------------------------------------------------- ledger


@contextmanager
def _log() -> Iterator[Log]:
    """The data directory's log, for one command: no threads, no migrations."""
    from cleanroom.ledger.log import Log

    dd = _dd()
    config = dd.load()
    db = dd.database(config)
    try:
        yield Log(db, config.origin, dd.read_key("log"))
    finally:
        db.dispose()


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
            _fail(f"line {n}: {exc}")
        etype = json.loads(bodies[-1])["type"]
        if reserved_type(etype):
            _fail(f"line {n}: entry type {etype!r} is reserved for the clean room's components")
    if not bodies:
        _fail("no entries on stdin (one JSON object per line)")
    with _log() as log:
        indices = log.append_many(bodies)
        if publish:
            log.integrate()
    for i in indices:
        typer.echo(i)


@ledger_app.command("get")
def ledger_get(index: int) -> None:
    """Print the entry at INDEX (canonical JSON)."""
    with _log() as log:
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

    with _log() as log:
        store = log.store
        if consistency is not None:
            for p in store.consistency_proof(consistency, size):
                typer.echo(b64(p))
            return
        cp = store.latest() if size is None else store.checkpoint_at(size)
        proof = store.inclusion_proof(index, cp.size)
        typer.echo(TlogProof(index, proof, cp.note).render(), nl=False)


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    publish: Annotated[bool, typer.Option(help="integrate pending entries first")] = True,
) -> None:
    """Print the latest signed checkpoint (integrating pending entries first)."""
    with _log() as log:
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
        dd = _dd()
        vkey = dd.read_key("log").verifier.vkey if dd.has_key("log") else None
        if vkey is None:
            _fail("--vkey is required (the log's verifier key)")
    log_key = parse_verifier(vkey)
    witnesses = [parse_verifier(w) for w in witness or []]
    if proof is not None:
        from cleanroom.ledger.tlogproof import verify_tlog_proof

        if entry is None:
            _fail("--entry is required with --proof")
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
        _fail("--url is required (the log prefix) unless --proof is given")
    from rich.progress import Progress

    from cleanroom.ledger.client import Monitor

    monitor = Monitor(
        url,
        log_key,
        state_dir or (_dd().path / "monitor"),
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
    dd = _dd()
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

    dd = _dd()
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

    dd = _dd()
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
    dd = _dd()
    dd.read_key("witness")
    _run_server(dd, "cleanroom.api.app:witness_app_from_env", host, port)


# --------------------------------------------------------------------------- principals


def _principals():
    from cleanroom.gate import Principals

    dd = _dd()
    return Principals(dd.database(dd.load()))


@principal_app.command("add")
def principal_add(
    name: str,
    org: Annotated[
        str, typer.Option(help="operator, platform, parent, oversight, researcher, users")
    ],
    role: Annotated[str, typer.Option(help="e.g. support, safety, legal, ingest, engineer")],
    jurisdiction: Annotated[str, typer.Option(help="where the principal works")],
    kind: Annotated[str | None, typer.Option(help="person, service or user")] = None,
    clearance: Annotated[int, typer.Option(help="clearance level 0-9")] = 1,
    subject: Annotated[str | None, typer.Option(help="for a user: their user id")] = None,
    statement: Annotated[
        Path | None,
        typer.Option(
            help="for org oversight: the oversight root's statement adding NAME "
            "(from `cleanroom oversight grant principal`)"
        ),
    ] = None,
) -> None:
    """Register a principal. One of the oversight body needs the oversight
    root's statement (--statement) and is put on the record."""
    from cleanroom.gate import Principal

    kind = kind or ("user" if subject is not None else "person")
    p = Principal(name, kind, org, role, jurisdiction, clearance, subject)
    if org == "oversight" or statement is not None:
        from cleanroom.room import CleanRoom

        doc = None if statement is None else _read_text(statement, "statement")
        with CleanRoom.open(_dd(), background=False) as room:
            room.add_principal(p, doc)
            room.log.integrate()
    else:
        _principals().add(p)
    typer.echo(f"added {p.name} ({p.kind}, org {p.org}, role {p.role}, {p.jurisdiction})")


@principal_app.command("token")
def principal_token(
    name: str,
    days: Annotated[float, typer.Option(help="lifetime in days")] = 90.0,
) -> None:
    """Issue an API token for NAME; the token (shown once) is the last line."""
    from datetime import timedelta

    if not 0 < days <= 3650:
        _fail(f"--days is a lifetime of more than 0 and at most 3650 days, got {days:g}")
    principals = _principals()
    token = principals.issue_token(name, timedelta(days=days))
    typer.echo(f"token for {name}, valid {days:g} days; only its hash is stored:", err=True)
    typer.echo(token)


@principal_app.command("revoke")
def principal_revoke(
    name: str,
    token_id: Annotated[str | None, typer.Option("--token", help="one token id")] = None,
) -> None:
    """Revoke NAME's tokens (all, or one with --token)."""
    n = _principals().revoke(name, token_id)
    typer.echo(f"revoked {n} token(s) of {name}")


@principal_app.command("remove")
def principal_remove(
    name: str,
    statement: Annotated[
        Path | None,
        typer.Option(help="for org oversight: the oversight root's statement removing NAME"),
    ] = None,
) -> None:
    """Disable principal NAME and revoke its tokens. One of the oversight body
    goes only by the oversight root's statement (--statement), on the record."""
    from cleanroom.room import CleanRoom

    doc = None if statement is None else _read_text(statement, "statement")
    with CleanRoom.open(_dd(), background=False) as room:
        n = room.remove_principal(name, doc)
        room.log.integrate()
    typer.echo(f"removed {name}: disabled, {n} token(s) revoked")


@principal_app.command("list")
def principal_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List principals with their number of live tokens."""
    rows = _principals().list()
    if as_json:
        typer.echo(json.dumps([{**p.to_dict(), "live_tokens": n} for p, n in rows], indent=2))
        return
    from rich.table import Table

    table = Table("name", "kind", "org", "role", "jurisdiction", "clearance", "live tokens")
    for p, n in rows:
        table.add_row(p.name, p.kind, p.org, p.role, p.jurisdiction, str(p.clearance), str(n))
    table_console().print(table)


# --------------------------------------------------------------------------- deletion


@deletion_app.command("run")
def deletion_run(order_id: str) -> None:
    """Execute (or resume) a deletion order, with progress."""
    from rich.progress import Progress

    from cleanroom.room import CleanRoom

    with CleanRoom.open(_dd()) as room, Progress() as bar:
        task = bar.add_task(f"deleting ({order_id})", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = room.deletions.run(room.system("deletion-service"), order_id, progress)
    typer.echo(
        f"{order_id}: {result['status']}, {result['deleted_users']} users and "
        f"{result['deleted_events']} events deleted"
    )


@deletion_app.command("list")
def deletion_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Deletion orders and their progress."""
    from cleanroom.gate.deletion import public_order
    from cleanroom.room import CleanRoom

    with CleanRoom.open(_dd(), start=False) as room:
        orders = [public_order(o) for o in room.vault.orders()]
    if as_json:
        typer.echo(json.dumps(orders, indent=2, default=str))
        return
    for o in orders:
        typer.echo(
            f"{o['id']}  {o['scope']:<12} {o['status']:<8} users {o['deleted_users']:>8}  "
            f"events {o['deleted_events']:>10}  by {o['issued_by']}"
        )


# --------------------------------------------------------------------------- policy


@policy_app.command("validate")
def policy_validate(
    path: Annotated[Path, typer.Argument(help="directory of .cedar files")],
) -> None:
    """Validate a policy set against its schema; print its version."""
    from cleanroom.gate.policy import load_dir

    bundle = load_dir(path)
    typer.echo(f"valid: {len(bundle.rule_ids)} rules, version {bundle.version}")


@policy_app.command("show")
def policy_show(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the shipped policy set's version and rules."""
    from cleanroom.gate.policy import shipped

    bundle = shipped()
    if as_json:
        rules = {rid: list(o) for rid, o in bundle.obligations.items()}
        typer.echo(json.dumps({"version": bundle.version, "rules": rules}, indent=2))
        return
    typer.echo(f"version {bundle.version}")
    for rid, obligations in bundle.obligations.items():
        typer.echo(f"  {rid}" + (f"  obligations: {', '.join(obligations)}" if obligations else ""))


# --------------------------------------------------------------------------- For You


@app.command()
def feed(
    user: Annotated[str | None, typer.Option(help="the user (local: opens the clean room)")] = None,
    url: Annotated[str | None, typer.Option(help="a running server: ask it over HTTP")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="CLEANROOM_TOKEN", help="the user's API token (--url)")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="a file (0600) holding the token instead of --token")
    ] = None,
    limit: Annotated[int, typer.Option(help="items per page (1-100)")] = 10,
    mode: Annotated[str | None, typer.Option(help="personalized or popular")] = None,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    seed: Annotated[str | None, typer.Option(help="request seed (replays use it)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the feed as JSON")] = False,
) -> None:
    """A user's For You feed with the reasons for each item. With --url and
    --token it asks a running server; with --user it opens the clean room here
    (reading through the gate as the recommender) and records the feed on the
    ledger the same way."""
    if url:
        from cleanroom.storage.secrets import api_token

        token = api_token(token, token_file, required="--url")
        assert token is not None
        doc = _remote_feed(url, token, limit, mode, cursor, seed)
    else:
        if not user:
            _fail("give --user USER (local) or --url URL --token TOKEN (a running server)")
        if cursor:
            _fail("--cursor needs a running server (--url): a local feed is not kept")
        from cleanroom.recommender import Recommender
        from cleanroom.room import CleanRoom

        with CleanRoom.open(_dd()) as room:
            rec = Recommender(room).start(background=False)
            served, index = rec.feed(user, limit=limit, mode=mode, seed=seed)
            doc = {**served.to_dict(), "ledger_index": index}
            rec.close()
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.table import Table

    table = Table(
        "#", "video", "creator", "score", "why", title=f"feed {doc['feed']} ({doc['mode']})"
    )
    for n, item in enumerate(doc["items"], doc["offset"] + 1):
        why = "; ".join(r["text"] for r in item["why"]) or ", ".join(item["sources"])
        table.add_row(str(n), item["video"], item["creator"], f"{item['score']:.4f}", why)
    table_console().print(table)
    typer.echo(f"ledger entry {doc['ledger_index']}; model {doc['model_version'][:19]}…")
    if doc.get("next_cursor"):
        typer.echo(f"next page: --cursor {doc['next_cursor']}")


def _remote_feed(
    url: str, token: str, limit: int, mode: str | None, cursor: str | None, seed: str | None
) -> dict:
    from cleanroom.client import api_call

    params = {
        k: v for k, v in {"limit": limit, "mode": mode, "cursor": cursor, "seed": seed}.items() if v
    }
    return api_call(None, "GET", url, "/v1/feed", token, params=params)


@app.command("eval")
def eval_(
    dataset: Annotated[
        list[str] | None, typer.Option(help="bundled dataset(s): kuairec-small, kuairand-small")
    ] = None,
    train: Annotated[Path | None, typer.Option(help="train split, 'user item label' lines")] = None,
    valid: Annotated[Path | None, typer.Option(help="validation split")] = None,
    test: Annotated[Path | None, typer.Option(help="test split")] = None,
    split: Annotated[str, typer.Option(help="the split to report: test or valid")] = "test",
    baselines: Annotated[bool, typer.Option(help="also measure the baselines")] = True,
    plot: Annotated[Path | None, typer.Option(help="write a bar chart (PNG) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Offline evaluation (the SIGformer protocol): our engine against
    popularity, implicit ALS and EASE in the same run, with a table, JSON or a
    plot. Any dataset in the 'user item label' format: --train/--valid/--test."""
    from cleanroom.foryou.evaluate import EvalError, run

    if split not in ("test", "valid"):
        _fail("--split must be test or valid")
    if train or valid or test:
        if not (train and test) or dataset:
            raise EvalError("give --train and --test (and --valid), or --dataset, not both")
        sources = [("files", {"train": train, "test": test, **({"valid": valid} if valid else {})})]
    else:
        sources = [(d, None) for d in (dataset or ["kuairec-small", "kuairand-small"])]
    if split == "valid" and any(f is not None and "valid" not in f for _, f in sources):
        _fail("--split valid needs --valid")
    results = run(sources, split=split, baselines=baselines, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        from cleanroom.foryou.evaluate import table

        for res in results:
            table_console().print(table(res))
    if plot:
        from cleanroom.foryou.evaluate import plot_results

        plot_results(results, plot)
        if not as_json:
            typer.echo(f"plot written to {plot}")


# --------------------------------------------------------------------------- entry point


def main() -> None:
    """Run the CLI; errors become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except CleanroomError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
