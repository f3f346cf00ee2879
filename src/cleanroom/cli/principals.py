"""``cleanroom principal``, ``deletion`` and ``policy``: who may reach the
data, the deletion orders and the gate's Cedar policy sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cleanroom.cli.common import data_directory, fail, read_text, table_console
from cleanroom.cli.help import group

principal_app = group(
    help="Principals and their API tokens. Example: cleanroom principal add alice --org "
    "operator --role support --jurisdiction US, then cleanroom principal token alice"
)
deletion_app = group(help="Deletion orders. Example: cleanroom deletion list")
policy_app = group(
    help="Cedar policy sets of the gate. Example: cleanroom policy validate my-policies/"
)


# --------------------------------------------------------------------------- principals


def _principals():
    from cleanroom.gate import Principals

    dd = data_directory()
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

        doc = None if statement is None else read_text(statement, "statement")
        with CleanRoom.open(data_directory(), background=False) as room:
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
        fail(f"--days is a lifetime of more than 0 and at most 3650 days, got {days:g}")
    principals = _principals()
    token = principals.issue_token(name, timedelta(days=days))
    typer.echo(f"token for {name}, valid {days:g} days; only its hash is stored:", err=True)
    typer.echo(token)


@principal_app.command("revoke")
def principal_revoke(
    name: str,
    token_id: Annotated[str | None, typer.Option("--token", help="one token id")] = None,
    reason: Annotated[
        str, typer.Option(help="why, for the record")
    ] = "revoked on the operator's machine",
) -> None:
    """Revoke NAME's live tokens (all, or one with --token), on the record: a
    principal.tokens_revoked ledger entry commits with the revocation."""
    from cleanroom.room import CleanRoom

    with CleanRoom.open(data_directory(), background=False) as room:
        out = room.revoke_tokens(name, token_id, by="cleanroom principal revoke", reason=reason)
        room.log.integrate()
    n = len(out["revoked"])
    typer.echo(f"revoked {n} token(s) of {name} (ledger entry {out['ledger_index']})")


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

    doc = None if statement is None else read_text(statement, "statement")
    with CleanRoom.open(data_directory(), background=False) as room:
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

    with CleanRoom.open(data_directory()) as room, Progress() as bar:
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

    with CleanRoom.open(data_directory(), start=False) as room:
        orders = [public_order(o) for o in room.deletions.orders.list()]
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
