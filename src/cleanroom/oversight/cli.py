"""`cleanroom oversight …`: the oversight body's monitor, run from its own
machine with the log's URL and public key only."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cleanroom.storage.secrets import api_token

oversight_app = typer.Typer(
    rich_markup_mode="markdown",  # a wrapped sentence is one sentence
    help="The oversight body's monitor: verify the ledger, enforce the rules, alerts. Example: "
    "cleanroom oversight watch --url http://127.0.0.1:8080/log/ --vkey LOG_VKEY --once",
    no_args_is_help=True,
)
StateDir = Annotated[
    Path | None,
    typer.Option(help="the monitor's state directory (default: DATA_DIR/oversight)"),
]


def state_of(given: Path | None) -> Path:
    """The monitor's state directory: as given, else ``oversight`` in the data
    directory (``--data-dir``, or ``.cleanroom`` where the command runs)."""
    if given is not None:
        return given
    return Path(os.environ.get("CLEANROOM_DATA_DIR") or ".cleanroom") / "oversight"


# how every command that calls the clean room's API takes the oversight token
Token = Annotated[
    str | None, typer.Option(envvar="CLEANROOM_TOKEN", help="an oversight principal's token")
]
TokenFile = Annotated[
    Path | None, typer.Option(help="a file (0600) holding the token instead of --token")
]


@oversight_app.command("watch")
def watch(
    url: Annotated[str, typer.Option(help="log prefix, e.g. http://127.0.0.1:8080/log/")],
    vkey: Annotated[str, typer.Option(help="the log's verifier key (pinned)")],
    state_dir: StateDir = None,
    witness: Annotated[list[str] | None, typer.Option(help="a pinned witness vkey")] = None,
    quorum: Annotated[int, typer.Option(help="witness cosignatures required")] = 0,
    webhook: Annotated[str | None, typer.Option(help="POST each new alert here")] = None,
    interval: Annotated[float, typer.Option(help="seconds between runs")] = 10.0,
    once: Annotated[bool, typer.Option(help="one run, then exit")] = False,
    api: Annotated[
        str | None, typer.Option(help="the clean room's API: decide access entries again")
    ] = None,
    token: Token = None,
    token_file: TokenFile = None,
    listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT: serve this monitor's witness (see `witness-init`) there"),
    ] = None,
    oversight_vkey: Annotated[
        str | None,
        typer.Option(
            help="the oversight body's root public key (pinned; without it the ledger's "
            "first oversight.root entry is trusted)"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON line per run (size, counts, new alerts)")
    ] = False,
) -> None:
    """Verify the log and check every new entry against the rules; new alerts
    are kept in STATE_DIR/alerts.jsonl (exit code 1 after a run that raised any
    with --once). With a witness key in STATE_DIR the monitor is also a witness:
    `--listen` serves its add-checkpoint endpoint, and every run checks that
    what it cosigned and what it verified are one history."""
    state_dir = state_of(state_dir)
    from cleanroom.ledger.note import parse_verifier
    from cleanroom.oversight import Watcher

    watcher = Watcher(
        url, parse_verifier(vkey), state_dir,
        witnesses=[parse_verifier(w) for w in witness or []], quorum=quorum, webhook=webhook,
        api_url=api, token=api_token(token, token_file), oversight_vkey=oversight_vkey,
    )  # fmt: skip
    if listen is not None:
        _serve_witness(watcher, listen)
    while True:
        report = watcher.run_once()
        if as_json:
            typer.echo(json.dumps({
                "size": report.size, "entries_checked": report.entries_checked,
                "new_alerts": [a.as_json() for a in report.new_alerts],
            }))  # fmt: skip
        else:
            typer.echo(
                f"size {report.size}: {report.entries_checked} entries verified, "
                f"{len(report.new_alerts)} new alerts"
            )
            for a in report.new_alerts:
                typer.echo(f"ALERT {a.kind} (entry {a.index}): {a.message}")
        for e in report.webhook_errors:
            typer.echo(f"warning: webhook: {e}", err=True)
        if once:
            if report.new_alerts:
                raise typer.Exit(1)
            return
        time.sleep(interval)


def _serve_witness(watcher, listen: str) -> None:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise typer.BadParameter(f"--listen must be HOST:PORT, got {listen!r}")
    if watcher.witness is None:
        raise typer.BadParameter(
            f"no witness key in {watcher.state_dir}; run `cleanroom oversight witness-init`"
        )
    served = watcher.witness.serve(host, int(port))
    typer.echo(f"witness {watcher.witness.verifier.vkey} at {served.url}/witness")


@oversight_app.command("witness-init")
def witness_init(
    name: Annotated[str, typer.Option(help="the witness key's name, e.g. oversight.example/w1")],
    state_dir: StateDir = None,
) -> None:
    """Give the monitor a witness key (once) and print its verifier key: give
    it to the operator (`cleanroom ledger add-witness VKEY URL`)."""
    state_dir = state_of(state_dir)
    from cleanroom.oversight.witness import init_key

    typer.echo(init_key(state_dir, name).vkey)


@oversight_app.command("alerts")
def alerts(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON alert per line")] = False,
    kind: Annotated[str | None, typer.Option(help="only alerts of this kind")] = None,
    incidents: Annotated[
        bool, typer.Option("--incidents", help="grouped by root cause, one line per incident")
    ] = False,
) -> None:
    """The alerts the monitor raised, with their evidence (--json), or grouped
    by root cause (--incidents: one hidden change is one incident)."""
    state_dir = state_of(state_dir)
    from cleanroom.oversight import KINDS, AlertStore
    from cleanroom.storage.errors import CleanroomError

    if not (state_dir / "watch.json").exists():
        raise CleanroomError(
            f"no monitor has run with the state directory {state_dir}",
            hint="pass the --state-dir of `cleanroom oversight watch`",
        )
    if kind is not None and kind not in KINDS:
        raise CleanroomError(f"--kind is one of {', '.join(KINDS)}, got {kind!r}")
    found = [a for a in AlertStore(state_dir).all() if kind is None or a["kind"] == kind]
    if incidents:
        from cleanroom.oversight.incidents import group

        grouped = group(found)
        for i in grouped:
            line = f"{i.severity:8} {i.id}  {i.summary}  [{i.cause}]"
            typer.echo(json.dumps(i.to_dict()) if as_json else line)
        if not as_json:
            typer.echo(f"{len(found)} alerts in {len(grouped)} incidents", err=True)
        return
    for a in found:
        if as_json:
            typer.echo(json.dumps(a))
        else:
            typer.echo(f"{a['kind']:26} entry {a['index']!s:>7}  {a['message']}")
    if not as_json:
        typer.echo(f"{len(found)} alerts", err=True)


@oversight_app.command("flows")
def flows(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
) -> None:
    """Export flows in the ledger the monitor verified, by destination, data
    class and decision."""
    state_dir = state_of(state_dir)
    from cleanroom.oversight import RuleEngine

    path = state_dir / "rules.json"
    counts = RuleEngine(json.loads(path.read_text()) if path.exists() else None).flows
    if as_json:
        typer.echo(json.dumps(counts))
        return
    for key, n in sorted(counts.items()):
        country, data_class, decision = key.split("|")
        typer.echo(f"{country:3} {data_class:14} {decision:7} {n}")
    typer.echo(f"{sum(counts.values())} flows", err=True)


@oversight_app.command("replay")
def replay(
    api: Annotated[str, typer.Option(help="the clean room's API, e.g. http://127.0.0.1:8080")],
    token: Token = None,
    token_file: TokenFile = None,
    state_dir: StateDir = None,
    sample: Annotated[int, typer.Option(help="feeds to replay", min=1)] = 200,
    seed: Annotated[int, typer.Option(help="seed of the sample")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """The replay audit: recompute a sample of the served feeds the monitor
    verified (run `oversight watch` first) with the approved ranking, and
    compare with what the ledger committed. Exit code 1 on any mismatch."""
    state_dir = state_of(state_dir)
    from cleanroom.oversight import Watcher

    watcher = Watcher.for_state(state_dir)
    token = api_token(token, token_file, required="oversight replay")
    assert token is not None
    report, new = watcher.replay(api, token, sample=sample, seed=seed)
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        typer.echo(
            f"{report.replayed} feeds replayed ({report.unavailable} no longer kept): "
            f"{report.mismatched} differ from the approved algorithm "
            f"({report.mismatch_rate:.1%}); {len(new)} new alerts"
        )
        if report.excess:
            top = ", ".join(f"{v} ({n})" for v, n in report.excess.most_common(5))
            typer.echo(
                f"  videos placed in the top {report.as_json()['head']} that the approved "
                f"algorithm would not have put there: {report.undeclared_share:.1%} of those "
                f"places; most often {top}"
            )
        for ex in report.examples[:5]:
            typer.echo(
                f"  entry {ex['entry']} feed {ex['feed']}: served config "
                f"{ex['served_config']}, approved {ex['approved_config']}"
            )
    if report.mismatched:
        raise typer.Exit(1)


@oversight_app.command("root-init")
def root_init(
    out: Annotated[Path, typer.Option(help="where to write the root private key (mode 600)")],
    name: Annotated[str, typer.Option(help="the key's name")] = "oversight-root",
) -> None:
    """Create the oversight body's root key: the private key into OUT (keep it
    offline), the public key on standard output — the operator pins it with
    `cleanroom init --oversight-vkey`, the monitor with `watch --oversight-vkey`."""
    from cleanroom.ledger.note import generate_signer
    from cleanroom.storage.errors import CleanroomError
    from cleanroom.storage.secrets import write_secret

    if out.exists():
        raise CleanroomError(f"{out} exists; a root key is never overwritten")
    s = generate_signer(name)
    write_secret(out, s.skey + "\n", error=CleanroomError)
    typer.echo(s.verifier.vkey)


@oversight_app.command("grant")
def grant(
    subject: Annotated[str, typer.Argument(help="reviewer or principal")],
    name: Annotated[str, typer.Argument(help="the reviewer's or principal's name")],
    root_key: Annotated[Path, typer.Option(help="the oversight root's private key file")],
    origin: Annotated[str, typer.Option(help="the clean room's log origin")],
    vkey: Annotated[str | None, typer.Option(help="a reviewer's public key")] = None,
    kind: Annotated[str, typer.Option(help="a principal's kind: person or service")] = "person",
    role: Annotated[str, typer.Option(help="a principal's role")] = "regulator",
    jurisdiction: Annotated[str, typer.Option(help="a principal's jurisdiction")] = "US",
    remove: Annotated[bool, typer.Option("--remove", help="a statement removing them")] = False,
) -> None:
    """Sign a statement of the oversight root adding (or removing) an oversight
    reviewer or principal; prints it (JSON) for `cleanroom release reviewer add
    --statement` or `cleanroom principal add --statement`."""
    from cleanroom.ledger.authority import SUBJECTS, sign_root_statement
    from cleanroom.ledger.note import parse_signer
    from cleanroom.storage.errors import CleanroomError

    if subject not in SUBJECTS:
        raise CleanroomError(f"SUBJECT is one of {', '.join(SUBJECTS)}, got {subject!r}")
    if subject == "reviewer" and vkey is None and not remove:
        raise CleanroomError("adding a reviewer needs --vkey (their public key)")
    try:
        signer = parse_signer(root_key.read_text().strip())
    except OSError as e:
        raise CleanroomError(f"cannot read the root key {root_key}: {e.strerror}") from None
    who = (
        {"vkey": vkey}
        if subject == "reviewer"
        else {"kind": kind, "role": role, "jurisdiction": jurisdiction}
    )
    env = sign_root_statement(
        signer, origin=origin, action="remove" if remove else "add", subject=subject, name=name,
        **({} if remove else who),
    )  # fmt: skip
    typer.echo(json.dumps(env))


@oversight_app.command("boost-review")
def boost_review(
    boost_id: Annotated[str, typer.Argument(help="the declared boost, e.g. boost-1a2b3c")],
    api: Annotated[str, typer.Option(help="the clean room's API, e.g. http://127.0.0.1:8080")],
    key: Annotated[Path, typer.Option(help="an oversight reviewer's private key file")],
    token: Token = None,
    token_file: TokenFile = None,
    reject: Annotated[bool, typer.Option("--reject", help="reject instead of approve")] = False,
    note: Annotated[str, typer.Option(help="why (kept on the record)")] = "",
) -> None:
    """Approve (or reject) a declared boost with an oversight reviewer's key: the
    declaration is read from the ledger, its digest checked against the one the
    clean room shows, and the signed review sent with the decision."""
    import httpx

    from cleanroom.ledger.authority import entry_digest, sign_boost_review
    from cleanroom.ledger.note import parse_signer
    from cleanroom.storage.errors import CleanroomError

    token = api_token(token, token_file, required="oversight boost-review")
    try:
        signer = parse_signer(key.read_text().strip())
    except OSError as e:
        raise CleanroomError(f"cannot read the key {key}: {e.strerror}") from None
    headers = {"Authorization": f"Bearer {token}"}
    base = api.rstrip("/")

    def call(method: str, path: str, **kw: Any) -> Any:
        try:
            r = httpx.request(method, base + path, headers=headers, timeout=60, **kw)
        except httpx.HTTPError as e:
            raise CleanroomError(f"cannot reach {base}: {e}") from None
        if r.status_code >= 400:
            raise CleanroomError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    boost = call("GET", f"/v1/boosts/{boost_id}")
    declared = call("GET", f"/v1/ledger/entries/{boost['declared_entry']}")["entry"]
    if entry_digest(declared) != boost["declared_digest"]:
        raise CleanroomError(
            f"the declaration on the ledger (entry {boost['declared_entry']}) is not what the "
            f"clean room shows for {boost_id}"
        )
    decision = "reject" if reject else "approve"
    envelope = sign_boost_review(signer, boost=boost_id, declared=declared, decision=decision)
    out = call("POST", f"/v1/boosts/{boost_id}/review",
               json={"decision": decision, "note": note, "envelope": envelope})  # fmt: skip
    typer.echo(f"{boost_id}: {out['status']} (ledger entry {out['ledger_index']})")
