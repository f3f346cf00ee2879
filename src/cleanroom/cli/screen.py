"""`cleanroom screen …`: screen names and CSV batches against the loaded
restricted-party lists, check an infrastructure manifest, load new list
versions and ownership data, dismiss false positives. Every screening, load
and dismissal is a ledger entry."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cleanroom.cli.common import open_room, table_console
from cleanroom.cli.help import group
from cleanroom.screen.errors import ScreeningInputError
from cleanroom.storage.errors import CleanroomError

screen_app = group(
    help="Restricted-party screening: names, batches, infrastructure, lists. Example: "
    "cleanroom screen name 'Hangzhou Hikvision' --threshold 0.8"
)
lists_app = group(
    help="Loaded lists: show them, load a new version. Example: cleanroom screen lists --all, "
    "cleanroom screen lists load ofac-sdn sdn.csv",
    no_args_is_help=False,  # with no command it shows the loaded lists
)
screen_app.add_typer(lists_app, name="lists")

By = Annotated[str, typer.Option("--by", help="the screening principal")]
DEFAULT_BY = "screening-service"


@contextmanager
def _room() -> Iterator[Any]:
    with open_room() as room:
        room.screening.ensure_bundled(by="init")  # a clean room made before screening existed
        yield room


def _authorize(room: Any, by: str, action: str = "write") -> None:
    room.gate.require(room.principals.get(by), action, "Screenings")


Threshold = Annotated[
    float | None,
    typer.Option(help="decide at this score (0 < t <= 1) instead of the matcher's default"),
]
CandidateLimit = Annotated[
    int | None, typer.Option("--limit", help="candidates to show per name (1-50, default 5)")
]


def _best(s: Any) -> dict[str, Any]:
    best = s.best
    return {
        "list": best.entry.list_id if best else None,
        "listed_name": best.entry.party.name if best else None,
        "matched_name": best.entry.text if best else None,
        "party_id": best.entry.party.id if best else None,
        "score": round(best.score, 4) if best else 0.0,
        "decision": s.decision,
        "reason": best.comparison.reason() if best else "no candidate shares a word",
    }


@screen_app.command("name")
def screen_name(
    name: Annotated[str, typer.Argument(help="the name to screen (any script)")],
    schema: Annotated[
        str, typer.Option(help="any, Person, Company, Organization, Vessel…")
    ] = "any",
    as_json: Annotated[bool, typer.Option("--json", help="the whole screening as JSON")] = False,
    threshold: Threshold = None,
    limit: CandidateLimit = None,
    by: By = DEFAULT_BY,
) -> None:
    """Screen one name: candidates with scores and why, and the decision."""
    from cleanroom.screen.screener import check_options

    check_options(threshold, limit)
    with _room() as room:
        _authorize(room, by)
        s, entry = room.screening.screen(name, schema, by=by, threshold=threshold, limit=limit)
    if as_json:
        typer.echo(json.dumps({**s.as_json(), "ledger_index": entry}, ensure_ascii=False))
        return
    from rich.table import Table

    t = Table(
        title=f"{s.query!r}: {s.decision} (threshold {s.threshold}, {s.matcher}, entry {entry})"
    )
    for col in ("score", "list", "listed name", "matched name", "programs", "why"):
        t.add_column(col)
    for h in s.hits:
        t.add_row(
            f"{h.score:.2f}", h.entry.list_id, h.entry.party.name, h.entry.text,
            ", ".join(h.entry.party.programs), h.comparison.reason(),
        )  # fmt: skip

    table_console().print(t)
    for r in s.ownership:
        typer.echo(f"ownership ({r['rule']}): {r['chain']}")
    for h in s.dismissed:
        typer.echo(f"dismissed earlier: {h.entry.list_id} {h.entry.party.id} {h.entry.party.name}")


def cell(text: str) -> str:
    """A table cell a spreadsheet will not run: text starting with = + - @ or a
    control character gets a leading apostrophe (OWASP CSV injection); tabs
    and line breaks inside become spaces."""
    text = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def read_batch(path: Path, column: str) -> list[tuple[str, str]]:
    """(name, schema) per row of a CSV with a ``column`` column (and an optional
    ``schema`` column); every row is checked before anything is screened."""
    from cleanroom.gate.screening import MAX_BATCH
    from cleanroom.screen.index import check_batch

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ScreeningInputError(f"cannot read {path}: {e}") from None
    reader = csv.DictReader(io.StringIO(text), strict=True)  # an open quote is an error
    if not reader.fieldnames or column not in reader.fieldnames:
        raise ScreeningInputError(
            f"{path.name} has no {column!r} column", hint=f"columns: {reader.fieldnames}"
        )
    rows = []
    try:
        for row in reader:
            rows.append(((row.get(column) or "").strip(), (row.get("schema") or "any").strip()))
    except csv.Error as e:
        raise ScreeningInputError(f"{path.name} is not valid CSV: {e}") from None
    if not rows:
        raise ScreeningInputError(f"{path.name} has no rows to screen")
    check_batch(rows, MAX_BATCH, lambda n: f"{path.name} line {n + 2}")
    return rows


@screen_app.command("batch")
def screen_batch(
    path: Annotated[Path, typer.Argument(help="a CSV file with a 'name' column")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per row")] = False,
    column: Annotated[str, typer.Option(help="the column holding the names")] = "name",
    threshold: Threshold = None,
    limit: CandidateLimit = None,
    by: By = DEFAULT_BY,
) -> None:
    """Screen every row of a CSV: the best match per row (list, listed name,
    score, decision at the threshold: the matcher's default or --threshold)."""
    from cleanroom.screen.screener import check_options

    check_options(threshold, limit)
    queries = read_batch(path, column)
    with _room() as room:
        _authorize(room, by)
        done = room.screening.screen_many(queries, by=by, threshold=threshold, limit=limit)
    if as_json:
        out = sys.stdout
        for n, (s, entry) in enumerate(done, 1):
            line = {"row": n, "name": s.query, **_best(s), "threshold": s.threshold,
                    "matcher": s.matcher, "ledger_index": entry}  # fmt: skip
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return
    matches = sum(1 for s, _ in done if s.decision == "match")
    for n, (s, _) in enumerate(done, 1):
        b = _best(s)
        typer.echo(f"{n}\t{s.decision}\t{b['score']:.2f}\t{cell(s.query)}\t{b['list'] or ''}\t"
                   f"{cell(b['listed_name'] or '')}")  # fmt: skip
    typer.echo(f"{len(done)} screened, {matches} matches", err=True)


@screen_app.command("infra")
def screen_infra(
    manifest: Annotated[Path, typer.Argument(help="the deployment's providers (YAML)")],
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """The Clean Network check: flag covered providers with the list and reason.
    Exit code 1 when the server would refuse to start on this manifest."""
    from cleanroom.room.infra import InfraRefused, check_infrastructure

    refused: InfraRefused | None = None
    with _room() as room:
        try:
            report = check_infrastructure(room, manifest) or {}
        except InfraRefused as e:
            refused, report = e, e.report
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        typer.echo(f"{report['deployment']}: {report['providers']} providers, "
                   f"{report['flagged']} flagged")  # fmt: skip
        for f in report["findings"]:
            if f["flagged"]:
                exc = f" (exception: {f['exception']})" if f["exception"] else ""
                typer.echo(f"FLAGGED {f['kind']} {f['name']}{exc}")
                for r in f["reasons"]:
                    typer.echo(f"  - {r}")
        typer.echo("ok: the server may start" if report["ok"] else f"refused: {refused}")
    if not report["ok"]:
        raise typer.Exit(1)


@lists_app.callback(invoke_without_command=True)
def lists_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False,
    all_versions: Annotated[bool, typer.Option("--all", help="every version loaded")] = False,
) -> None:
    """The loaded lists (current versions; --all for every version)."""
    if ctx.invoked_subcommand is not None:
        return
    with _room() as room:
        rows = room.screening.lists()
    if not all_versions:
        rows = [r for r in rows if r["current"]]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        mark = "*" if r["current"] else " "
        typer.echo(f"{mark} {r['list']:14} {r['parties']:>6} parties  {r['version'][:23]}  "
                   f"{r['source']}  (entry {r['ledger_index']})")  # fmt: skip


@lists_app.command("load")
def lists_load(
    fmt: Annotated[str, typer.Argument(help="ofac-sdn, ofac-cons, fcc, csl or operator")],
    path: Annotated[Path, typer.Argument(help="the list file")],
    add: Annotated[Path | None, typer.Option(help="OFAC: the ADD (addresses) file")] = None,
    alt: Annotated[Path | None, typer.Option(help="OFAC: the ALT (aliases) file")] = None,
    list_id: Annotated[str | None, typer.Option(help="operator: operator:<name>")] = None,
    title: Annotated[str | None, typer.Option(help="operator: the list's title")] = None,
    authority: Annotated[str | None, typer.Option(help="operator: who publishes it")] = None,
    rule: Annotated[str, typer.Option(help="operator: ofac-50, bis-affiliates or none")] = "none",
    published: Annotated[str, typer.Option(help="publication date of this version")] = "",
    by: By = DEFAULT_BY,
) -> None:
    """Load a new version of a list; prints what it added, changed, removed."""
    from cleanroom.screen.lists import load

    options: dict[str, Any] = {"published": published}
    if fmt in ("ofac-sdn", "ofac-cons"):
        options.update(add=add, alt=alt)
    elif fmt == "operator":
        if not (list_id and title and authority):
            raise CleanroomError("an operator list needs --list-id, --title and --authority")
        options.update(list_id=list_id, title=title, authority=authority, rule=rule)
    snapshot = load(fmt, path, **options)  # parsed in full before anything is stored
    with _room() as room:
        _authorize(room, by)
        result = room.screening.load(snapshot, by=by)
    r = result.as_json()
    if not result.changed:
        typer.echo(f"{r['list']}: version {r['version']} is already current; nothing changed")
        return
    typer.echo(f"{r['list']}: version {r['version']} (was {r['previous']}): "
               f"{r['added']} added, {r['modified']} changed, {r['removed']} removed "
               f"(entry {r['ledger_index']})")  # fmt: skip


@screen_app.command("ownership")
def ownership(
    path: Annotated[Path, typer.Argument(help="CSV with owner, owned, percent")],
    by: By = DEFAULT_BY,
) -> None:
    """Load the ownership graph the 50% rules are applied to."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ScreeningInputError(f"cannot read {path}: {e}") from None
    with _room() as room:
        _authorize(room, by)
        r = room.screening.load_ownership(text, by=by, source=path.name)
    typer.echo(f"ownership {r['version']}: {r['stakes']} stakes among {r['entities']} entities "
               f"(entry {r['ledger_index']})")  # fmt: skip


@screen_app.command("dismiss")
def dismiss(
    name: Annotated[str, typer.Argument(help="the screened name")],
    list_id: Annotated[str, typer.Option("--list", help="the list of the hit")],
    party: Annotated[str, typer.Option(help="the listed party's id (e.g. sdn:36)")],
    reason: Annotated[str, typer.Option(help="why it is a false positive")],
    by: By = DEFAULT_BY,
) -> None:
    """Dismiss a hit as a false positive for this party and list version."""
    with _room() as room:
        _authorize(room, by)
        r = room.screening.dismiss(name, list_id, party, by=by, reason=reason)
    typer.echo(f"dismissed {r['party_id']} of {r['list']} for {name!r} under version "
               f"{r['list_version']} (entry {r['ledger_index']})")  # fmt: skip


@screen_app.command("flows")
def flows(as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False) -> None:
    """Export flows (each a ledger entry), counted by destination and data class."""
    with _room() as room:
        summary = room.egress.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{summary['flows']} flows: {summary['allowed']} allowed, "
               f"{summary['refused']} refused")  # fmt: skip
    for row in summary["by_destination"]:
        typer.echo(f"  {row['country']:3} {row['data_class']:14} {row['decision']:7} "
                   f"{row['flows']}")  # fmt: skip
