"""``cleanroom load users|videos|events FILE…``: a platform's own files into
the clean room, every row through the gate (``room/loading.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cleanroom.cli.common import data_directory, fail
from cleanroom.cli.help import group

load_app = group(
    help="Load a platform's users, videos or events from CSV, JSON lines or Parquet files, "
    "every row through the gate. Example: cleanroom load events events.parquet --batch 5000"
)

Files = Annotated[list[Path], typer.Argument(help="the files to load, in order", metavar="FILE…")]
Format = Annotated[
    str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the name)")
]
Maps = Annotated[
    list[str] | None,
    typer.Option("--map", help="FIELD=COLUMN: read a field from a column of another name"),
]
Batch = Annotated[int, typer.Option("--batch", help="rows per batch (all or nothing), 1-10,000")]
Url = Annotated[
    str | None, typer.Option("--url", help="load through a running server's API instead")
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="CLEANROOM_TOKEN", help="the API token with --url"),
]
As = Annotated[
    str | None,
    typer.Option("--as", help="the principal to load as locally (default: the platform's "
                 "ingest service)"),
]  # fmt: skip
ReportFile = Annotated[
    Path | None, typer.Option("--report", help="write the whole report (every rejected row) here")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the report as JSON")]


def _run(
    kind: str,
    files: list[Path],
    fmt: str | None,
    maps: list[str] | None,
    batch: int,
    url: str | None,
    token: str | None,
    principal: str | None,
    report_file: Path | None,
    as_json: bool,
) -> None:
    from cleanroom.room.loading import LoadError, Mapping, Report, format_of

    try:
        mapping = Mapping.parse(kind, maps or [])
        formats = [format_of(f, fmt) for f in files]
    except LoadError as e:
        fail(e.message)
    report = Report(kind)
    dd = data_directory()
    progress_dir = dd.path / "loads"
    if url is not None:
        if not token:
            fail("--url needs --token (or CLEANROOM_TOKEN): a platform ingest service's token")
        from cleanroom.room.loading import HttpSink

        sink = HttpSink(url, token)
        try:
            _load_all(sink, kind, files, formats, mapping, batch, progress_dir, report)
        finally:
            sink.close()
    else:
        with _local_sink(principal) as sink:
            _load_all(sink, kind, files, formats, mapping, batch, progress_dir, report)
    _finish(report, report_file, as_json)


def _load_all(sink: Any, kind: str, files: list[Path], formats: list[str], mapping: Any,
              batch: int, progress_dir: Path, report: Any) -> None:  # fmt: skip
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cleanroom.room.loading import count_rows, load_file

    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=True) as bar:
        for path, fmt in zip(files, formats, strict=True):
            task = bar.add_task(f"{kind} {path.name}", total=count_rows(path, fmt), rate="—")
            t0 = time.perf_counter()

            def advance(n: int, task: Any = task, t0: float = t0) -> None:
                bar.advance(task, n)
                done = bar.tasks[task].completed
                bar.update(task, rate=f"{done / max(time.perf_counter() - t0, 1e-9):,.0f}")

            load_file(sink, kind, path, fmt=fmt, mapping=mapping, batch=batch,
                      progress_dir=progress_dir, report=report, advance=advance)  # fmt: skip
    report.seconds = time.perf_counter() - started


class _local_sink:
    """The data directory's clean room, opened for the load, as a principal."""

    def __init__(self, principal: str | None) -> None:
        self.name = principal

    def __enter__(self) -> Any:
        from cleanroom.room import CleanRoom
        from cleanroom.room.bootstrap import bootstrap
        from cleanroom.room.live import load_policy
        from cleanroom.room.loading import LocalSink

        dd = data_directory()
        if not dd.exists():
            fail(f"no clean room in {dd.path}: run `cleanroom init` first (or load with --url)")
        self.room = CleanRoom.open(dd, background=False)
        try:
            bootstrap(self.room, dd)
            load_policy(self.room)  # the live approved policy decides, as in the server
            who = self._principal()
        except BaseException:
            self.room.close()
            raise
        return LocalSink(self.room, who)

    def _principal(self) -> Any:
        principals = self.room.principals
        if self.name is not None:
            return principals.get(self.name)
        ingest = [p for p, _ in principals.list()
                  if p.org == "platform" and p.kind == "service" and p.role == "ingest"
                  and not p.disabled]  # fmt: skip
        if not ingest:
            fail("no platform ingest service to load as: cleanroom principal add "
                 "platform-ingest --org platform --role ingest --kind service "
                 f"--jurisdiction {self.room.config.site.jurisdiction} (or --as NAME)")  # fmt: skip
        if len(ingest) > 1:
            names = ", ".join(p.name for p in ingest)
            fail(f"say which principal loads with --as NAME (platform ingest services: {names})")
        return ingest[0]

    def __exit__(self, *exc: object) -> None:
        try:
            self.room.log.integrate()
        finally:
            self.room.close()


def _finish(report: Any, report_file: Path | None, as_json: bool) -> None:
    import resource

    from cleanroom.room.loading import text_report

    doc = report.to_dict()
    doc["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    if report_file is not None:
        report_file.write_text(json.dumps(doc, indent=1))
    if as_json:
        typer.echo(json.dumps(doc))
    else:
        rate = f", {doc['rows_per_s']:,} rows/s" if doc["rows_per_s"] else ""
        resumed = f", {report.resumed:,} done before (resumed)" if report.resumed else ""
        typer.echo(f"{report.kind}: {report.read:,} rows read, {report.stored:,} stored"
                   f"{resumed}{rate}")  # fmt: skip
    if not report.ok:
        typer.echo(text_report(report), err=True, nl=False)
        rows = sum(1 for r in report.rejected if not r.reason.startswith("rows "))
        typer.echo(f"{rows} row(s) rejected; {report.batches_rejected} batch(es) not loaded "
                   "— fix them and run the same command again", err=True)  # fmt: skip
        raise typer.Exit(2)


def _command(kind: str) -> Any:
    def command(
        files: Files,
        fmt: Format = None,
        maps: Maps = None,
        batch: Batch = 5000,
        url: Url = None,
        token: Token = None,
        principal: As = None,
        report_file: ReportFile = None,
        as_json: AsJson = False,
    ) -> None:
        _run(kind, files, fmt, maps, batch, url, token, principal, report_file, as_json)

    return command


_HELP = {
    "users": "Load users (columns id, jurisdiction, profile.X, public.X, synthetic). "
    "Example: cleanroom load users users.csv --map id=user_id",
    "videos": "Load videos (columns id, creator, topics as a JSON list or a|b, public, "
    "created_ms, language, region). Example: cleanroom load videos videos.jsonl",
    "events": "Load events (columns id, user, video, kind, ts_ms, watch_ms, context). Users "
    "and videos are loaded first. Example: cleanroom load events part-*.parquet",
}
for _kind in ("users", "videos", "events"):
    load_app.command(_kind, help=_HELP[_kind])(_command(_kind))
