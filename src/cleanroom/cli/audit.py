"""`cleanroom audit …`: algorithm audits by the oversight body (exposure,
replay, sock puppets), and the audit accounts the operator provisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cleanroom.cli.common import data_directory, open_room
from cleanroom.cli.help import group
from cleanroom.oversight.cli import Token, TokenFile
from cleanroom.storage.secrets import api_token

audit_app = group(
    help="Algorithm audits: exposure, replay, sock puppets; HTML and JSON reports. Example: "
    "cleanroom audit run --api http://127.0.0.1:8080 --report audit.html --monitor-state oversight"
)


@audit_app.command("run")
def run(
    api: Annotated[str, typer.Option(help="the clean room's API, e.g. http://127.0.0.1:8080")],
    report: Annotated[Path, typer.Option(help="the HTML report to write (JSON beside it)")],
    token: Token = None,
    token_file: TokenFile = None,
    accounts: Annotated[
        Path | None, typer.Option(help="audit accounts (from `audit accounts`): run sock puppets")
    ] = None,
    monitor_state: Annotated[
        Path | None,
        typer.Option(help="the oversight monitor's state directory: verify, replay, alerts"),
    ] = None,
    personas: Annotated[int, typer.Option(help="sock puppets (one topic each)", min=1)] = 6,
    pages: Annotated[int, typer.Option(help="feed pages per puppet", min=1, max=200)] = 10,
    page_size: Annotated[int, typer.Option(help="videos per page", min=1, max=100)] = 10,
    flagged: Annotated[
        list[str] | None, typer.Option(help="a flagged topic (time to first exposure)")
    ] = None,
    since_ms: Annotated[int, typer.Option(help="exposure from this time on", min=0)] = 0,
    replay_sample: Annotated[int, typer.Option(help="feeds the replay audit samples", min=1)] = 500,
) -> None:
    """Run the audit against a clean room over HTTP and write REPORT (HTML with
    plots) and REPORT.json: method, data window, model versions and the ledger
    checkpoint it was computed against."""
    from rich.progress import Progress

    from cleanroom.audit.puppets import Accounts
    from cleanroom.audit.report import AuditTarget, run_audit, write_report

    if report.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"--report names an .html file, got {report}")
    acc = Accounts.read(accounts) if accounts is not None else None
    the_token = api_token(token, token_file, required="audit run") or ""
    if monitor_state is not None and not (monitor_state / "watch.json").exists():
        raise typer.BadParameter(
            f"{monitor_state} is no monitor state directory (run `cleanroom oversight watch`)"
        )
    with Progress(transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done)

        verified = None
        if monitor_state is not None:
            from cleanroom.oversight import Watcher

            progress("replay", 0, 1)
            verified = Watcher.for_state(monitor_state).verified(
                api, the_token, sample=replay_sample
            )
        doc = run_audit(
            AuditTarget(api, the_token),
            accounts=acc,
            verified=verified,
            n_personas=personas,
            pages=pages,
            page_size=page_size,
            flagged=set(flagged or []),
            since_ms=since_ms,
            progress=progress,
        )
    json_path = write_report(doc, report, state_dir=monitor_state)
    ex = doc["exposure"]
    typer.echo(
        f"exposure: {ex['impressions']:,} impressions, declared boosts "
        f"{ex['declared_boosts']['share']:.2%}"
    )
    if "replay" in doc:
        r = doc["replay"]
        typer.echo(
            f"replay: {r['mismatched']} of {r['replayed']} feeds differ from the approved "
            f"algorithm ({r['mismatch_rate']:.1%}); undeclared boosts took "
            f"{r['undeclared_boost_share']:.1%} of head impressions"
        )
    if "puppets" in doc:
        p = doc["puppets"]
        typer.echo(
            f"puppets: exploit {p['mean_exploit_fraction']:.1%} vs non-personalised "
            f"{p['mean_baseline_non_personalised']:.1%} vs random {p['mean_baseline_random']:.1%}; "
            f"non-personalised feed ignores history: "
            f"{p['non_personalised_ignores_history']['identical']}"
        )
    typer.echo(f"report: {report} (JSON: {json_path})")


@audit_app.command("accounts")
def accounts_cmd(
    count: Annotated[int, typer.Option(help="puppet accounts", min=1, max=1000)] = 6,
    out: Annotated[
        Path | None,
        typer.Option(
            help="where to write the tokens, mode 0600 (default: DATA_DIR/audit-accounts.json)"
        ),
    ] = None,
    days: Annotated[float, typer.Option(help="token lifetime in days")] = 7.0,
) -> None:
    """(Operator) Provision sock-puppet accounts for the oversight body, on the
    record; writes their tokens to OUT for `audit run --accounts`."""
    from cleanroom.room.accounts import provision
    from cleanroom.storage.secrets import write_secret

    out = out or data_directory().path / "audit-accounts.json"
    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite tokens")
    with open_room() as room:
        doc = provision(room, count, days=days)
    write_secret(out, json.dumps(doc, indent=1) + "\n")
    typer.echo(f"{count} audit accounts (ledger entry {doc['ledger_index']}); tokens in {out}")
