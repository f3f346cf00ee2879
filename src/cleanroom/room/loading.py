"""Bulk loading of a platform's own files: users, videos and events from CSV,
JSON lines or Parquet, every row through the gate.

A file is read in batches (Parquet a record batch at a time, so memory stays
bounded whatever its size); each row becomes a record (``--map field=column``
renames columns; CSV text becomes numbers, booleans and JSON where the field
is one) and is checked as the API checks it. A batch is loaded all or
nothing: one bad row rejects its batch, and the report names each rejected
row and why. Loading goes through the same gate decisions, encryption and
ledger entries as the API — locally (:class:`LocalSink`) or through a
running server (:class:`HttpSink`).

A load is resumable: after each stored batch the number of rows done is
written to a progress file, so running the same command again after an
interruption starts after them; a batch stored but not yet noted is sent
again and stores nothing twice (the vault answers a repeated event batch
with nothing new; users and videos are written as given).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from cleanroom.errors import CleanroomError
from cleanroom.vault import Event, InvalidRecord, User, Video

KINDS = ("users", "videos", "events")
FORMATS = ("csv", "jsonl", "parquet")
REQUIRED = {
    "users": ("id", "jurisdiction"),
    "videos": ("id", "creator"),
    "events": ("id", "user", "video", "kind", "ts_ms"),
}
OPTIONAL = {
    "users": ("profile", "public", "synthetic"),
    "videos": ("topics", "public", "created_ms", "language", "region"),
    "events": ("watch_ms", "context"),
}
NESTED = {"users": ("profile.", "public.")}  # users' columns profile.X and public.X
INTEGERS = {"ts_ms", "watch_ms", "created_ms", "profile.birth_year"}
BOOLEANS = {"public", "synthetic"}
JSON_FIELDS = {"profile", "public", "context", "topics", "profile.precise_location"}
MAX_BATCH = 10_000
_INT = re.compile(r"^-?[0-9]{1,19}$")


class LoadError(CleanroomError):
    """A file that cannot be loaded at all (nothing of it is)."""


@dataclass
class Rejected:
    """A row that was not loaded, and why."""

    row: int
    reason: str


@dataclass
class Report:
    """What a load did: rows read, stored, skipped as done before, rejected."""

    kind: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    stored: int = 0
    resumed: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    batches_rejected: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "files": self.files, "read": self.read, "stored": self.stored,
            "resumed": self.resumed, "batches_rejected": self.batches_rejected,
            "rejected": [r.__dict__ for r in self.rejected], "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.read / self.seconds) if self.seconds else None,
        }  # fmt: skip


# ---------------------------------------------------------------------------- reading


def format_of(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise LoadError(f"--format is one of {', '.join(FORMATS)}, got {given!r}")
        return given
    suffix = path.suffix.lower()
    found = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
    if suffix not in found:
        raise LoadError(
            f"cannot tell the format of {path.name} from its name",
            hint="name it .csv, .jsonl or .parquet, or pass --format",
        )
    return found[suffix]


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a file: CSV rows by line (the header is line 1),
    JSON lines by line, Parquet rows from 1; a file that cannot be read at all
    is a :class:`LoadError`."""
    _readable(path)
    reader = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[fmt]
    return reader(path)


def _readable(path: Path) -> None:
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LoadError(f"{path}: the file is empty")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
            for values in reader:
                line = reader.line_num
                if not values:
                    continue
                if len(values) != len(header):
                    yield line, {"\0error": f"{len(values)} values for {len(header)} columns"}
                    continue
                yield line, {k: v for k, v in zip(header, values, strict=True) if v != ""}
        except csv.Error as e:
            raise LoadError(f"{path.name}, line {reader.line_num}: {e}") from None
        except UnicodeDecodeError as e:
            raise LoadError(f"{path.name}: not UTF-8 text ({e.reason})") from None


def csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        try:
            return next(csv.reader(f, strict=True), [])
        except csv.Error as e:
            raise LoadError(f"{path.name}, line 1: {e}") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as e:
                yield n, {"\0error": f"not JSON: {e}"}
                continue
            yield n, doc if isinstance(doc, dict) else {"\0error": "not a JSON object"}


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid and OSError kinds
        raise LoadError(f"{path.name}: not a Parquet file ({e})") from None
    n = 0
    for batch in pf.iter_batches(batch_size=MAX_BATCH):
        for row in batch.to_pylist():
            n += 1
            yield n, {k: v for k, v in row.items() if v is not None}


def count_rows(path: Path, fmt: str) -> int | None:
    """About how many rows a file holds, for a progress bar (None: unknown)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        lines = 0
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
        return max(0, lines - (1 if fmt == "csv" else 0))
    except Exception:
        return None


def columns_of(path: Path, fmt: str) -> list[str] | None:
    """The file's columns where the format has a header (None: JSON lines)."""
    if fmt == "csv":
        return csv_header(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as e:
            raise LoadError(f"{path.name}: not a Parquet file ({e})") from None
    return None


# ---------------------------------------------------------------------------- rows to records


@dataclass(frozen=True)
class Mapping:
    """Which column holds which field (``field=column``; unmapped fields are
    read from the column of their own name)."""

    kind: str
    columns: dict[str, str] = field(default_factory=dict)
    by_column: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_column", {c: f for f, c in self.columns.items()})

    @classmethod
    def parse(cls, kind: str, pairs: list[str]) -> Mapping:
        out: dict[str, str] = {}
        for pair in pairs:
            name, sep, column = pair.partition("=")
            if not sep or not name or not column:
                raise LoadError(f"--map takes FIELD=COLUMN, got {pair!r}")
            if not _known(kind, name):
                raise LoadError(f"{name!r} is not a field of {kind} (fields: {fields_text(kind)})")
            out[name] = column
        return cls(kind, out)

    def check(self, columns: list[str] | None, path: Path) -> None:
        """A file missing a required column is refused before any row is read."""
        if columns is None:
            return
        missing = [f for f in REQUIRED[self.kind] if self.columns.get(f, f) not in columns]
        if missing:
            f = missing[0]
            raise LoadError(
                f"{path.name} has no column {self.columns.get(f, f)!r} for the field {f!r} "
                f"of {self.kind} (columns: {', '.join(columns) or 'none'})",
                hint=f"map another column to it: --map {f}=COLUMN",
            )

    def fields(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row's values by field name (columns renamed; others as named)."""
        if not self.columns:
            return row
        by_column = self.by_column
        return {
            by_column.get(k, k): v
            for k, v in row.items()
            if k not in self.columns or k in by_column
        }


@functools.cache
def _known(kind: str, name: str) -> bool:
    return (
        name in REQUIRED[kind]
        or name in OPTIONAL[kind]
        or name.startswith(NESTED.get(kind, ("\0",)))
    )


def fields_text(kind: str) -> str:
    extra = ", profile.X, public.X" if kind == "users" else ""
    return ", ".join(REQUIRED[kind] + OPTIONAL[kind]) + extra


def _value(name: str, v: Any) -> Any:
    """A CSV text as the field's type (other formats are typed already)."""
    if not isinstance(v, str):
        return v
    if name in INTEGERS and _INT.match(v.strip()):
        return int(v)
    if name in BOOLEANS and v.strip().lower() in ("true", "false", "1", "0"):
        return v.strip().lower() in ("true", "1")
    if name in JSON_FIELDS and v.lstrip()[:1] in ("{", "["):
        try:
            return orjson.loads(v)  # (no NaN or infinity: not JSON)
        except orjson.JSONDecodeError:
            raise InvalidRecord(f"{name} is not valid JSON") from None
    if name == "topics":
        return [t for t in v.split("|") if t]
    return v


COERCED = {  # the fields whose CSV text becomes a number, a boolean or JSON
    kind: tuple(
        f
        for f in REQUIRED[kind] + OPTIONAL[kind]
        if f in INTEGERS or f in BOOLEANS or f in JSON_FIELDS
    )
    for kind in KINDS
}


def record(kind: str, values: dict[str, Any]) -> Any:
    """The vault's record of a row (``InvalidRecord`` says what is wrong)."""
    if "\0error" in values:
        raise InvalidRecord(values["\0error"])
    for name in values:
        if not _known(kind, name):
            known = fields_text(kind)
            raise InvalidRecord(f"unknown column {name!r} (fields of {kind}: {known})")
    for name in REQUIRED[kind]:
        if name not in values:
            raise InvalidRecord(f"no value for {name!r}")
    if kind == "users":
        return _user(values)
    doc = values
    for name in COERCED[kind]:
        v = doc.get(name)
        if type(v) is str:
            if doc is values:
                doc = dict(values)
            doc[name] = _value(name, v)
    return Video.parse(doc) if kind == "videos" else Event.parse(doc)


def _user(values: dict[str, Any]) -> User:
    doc: dict[str, Any] = {}
    for name, v in values.items():
        v = _value(name, v)
        head, _, rest = name.partition(".")
        if rest:
            doc.setdefault(head, {})[rest] = v
        else:
            doc[name] = v
    uid = doc.pop("id")
    return User.parse(uid if isinstance(uid, str) else str(uid), doc)


# ---------------------------------------------------------------------------- where rows go


class Sink(Protocol):
    def store(self, kind: str, records: list[Any]) -> int:
        """Store one batch all or nothing; how many were new."""
        ...


class Progress:
    """How many rows of a file are done, kept in a small file beside the data."""

    def __init__(self, directory: Path, kind: str, path: Path) -> None:
        st = path.stat()
        key = f"{kind}\n{path.resolve()}\n{st.st_size}\n{st.st_mtime_ns}".encode()
        self.path = directory / f"{kind}-{hashlib.sha256(key).hexdigest()[:16]}.json"
        self.file = str(path)

    def done(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["rows_done"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def note(self, rows_done: int, finished: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"file": self.file, "rows_done": rows_done, "finished": finished})
        )
        tmp.replace(self.path)


def load_file(
    sink: Sink,
    kind: str,
    path: Path,
    *,
    fmt: str,
    mapping: Mapping,
    batch: int,
    progress_dir: Path,
    report: Report,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Load one file into ``sink`` in batches of ``batch`` rows (see the module)."""
    if not 1 <= batch <= MAX_BATCH:
        raise LoadError(f"--batch takes 1 to {MAX_BATCH:,} rows, got {batch}")
    _readable(path)
    mapping.check(columns_of(path, fmt), path)
    progress = Progress(progress_dir, kind, path)
    skip = progress.done()
    report.files.append(str(path))
    state = {"prefix_ok": True}  # every batch so far stored: the progress file may advance
    rows: list[tuple[int, dict[str, Any]]] = []
    index = 0
    # one batch is stored (in a thread: SQLite and the network let go of the
    # GIL) while the next is read and checked here
    pool = ThreadPoolExecutor(1, thread_name_prefix="load")
    pending: Future[None] | None = None

    def stored(checked: Checked, upto: int) -> None:
        ok = _store(sink, kind, checked, report)
        state["prefix_ok"] = state["prefix_ok"] and ok
        if state["prefix_ok"]:
            progress.note(upto)
        if advance is not None:
            advance(checked.size)

    def flush() -> None:
        nonlocal pending
        checked = _check(kind, rows, mapping)
        if pending is not None:
            pending.result()
        pending = pool.submit(stored, checked, index)
        rows.clear()

    try:
        for line, row in read_rows(path, fmt):
            index += 1
            if index <= skip:
                report.resumed += 1
                continue
            report.read += 1
            rows.append((line, row))
            if len(rows) == batch:
                flush()
        if rows:
            flush()
        if pending is not None:
            pending.result()
    finally:
        pool.shutdown(wait=True)
    if state["prefix_ok"]:
        progress.note(index, finished=True)
    if index == 0:
        raise LoadError(f"{path}: no rows (only a header?)")


@dataclass
class Checked:
    """A batch read and checked: its records, or the rows that reject it."""

    first: int
    last: int
    size: int
    records: list[Any]
    lines: dict[str, int]  # record id -> row
    bad: list[Rejected]


def _check(kind: str, rows: list[tuple[int, dict[str, Any]]], mapping: Mapping) -> Checked:
    records, bad, seen = [], [], {}
    for line, row in rows:
        try:
            rec = record(kind, mapping.fields(row))
        except InvalidRecord as e:
            bad.append(Rejected(line, e.message))
            continue
        if rec.id in seen:
            bad.append(Rejected(line, f"the id {rec.id!r} is also on row {seen[rec.id]}"))
            continue
        seen[rec.id] = line
        records.append(rec)
    return Checked(rows[0][0], rows[-1][0], len(rows), records, seen, bad)


def _store(sink: Sink, kind: str, checked: Checked, report: Report) -> bool:
    """Store a checked batch; False (and its rows in the report) if rejected."""
    bad = checked.bad
    if not bad:
        try:
            report.stored += sink.store(kind, checked.records)
            return True
        except CleanroomError as e:
            bad = _blame(e, checked.records, checked.lines)
    report.batches_rejected += 1
    report.rejected.extend(bad)
    why = f"rows {checked.first}-{checked.last} not loaded (their batch had {len(bad)} rejected)"
    report.rejected.append(Rejected(checked.first, why))
    return False


def _blame(e: CleanroomError, records: list[Any], seen: dict[str, int]) -> list[Rejected]:
    """The rows a store's refusal names (an unknown user or video, an id
    already stored), or the whole batch's first row with the reason."""
    named = re.findall(r"'([^']+)'", e.message)
    out = []
    for rec in records:
        refs = {rec.id, getattr(rec, "user", None), getattr(rec, "video", None)}
        if refs & set(named):
            out.append(Rejected(seen[rec.id], e.message))
    return out or [Rejected(min(seen.values()) if seen else 0, e.message)]


class LocalSink:
    """Store batches in a local clean room as a principal, through its gate."""

    def __init__(self, room: Any, principal: Any, purpose: str = "ingest") -> None:
        self.room = room
        self.principal = principal
        self.purpose = purpose

    def store(self, kind: str, records: list[Any]) -> int:
        gate, vault, who = self.room.gate, self.room.vault, self.principal
        if kind == "events":
            subjects = sorted({e.user for e in records})
            grant = gate.require(who, "write", "Events", purpose=self.purpose, subjects=subjects)
            return vault.store_events(grant, records).count
        if kind == "videos":
            grant = gate.require(who, "write", "Videos", purpose=self.purpose)
            return vault.put_videos(grant, records)
        grant = gate.require(who, "write", "Profile", purpose=self.purpose,
                             subjects=sorted(u.id for u in records))  # fmt: skip
        return vault.put_users(grant, records)


class HttpSink:
    """Store batches through a running server's API (the platform's routes)."""

    def __init__(self, url: str, token: str, purpose: str = "ingest") -> None:
        import httpx

        self.base = url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=300,
            limits=httpx.Limits(max_connections=16),
        )  # fmt: skip
        self.purpose = purpose

    def close(self) -> None:
        self.client.close()

    def _answer(self, r: Any) -> Any:
        if r.status_code >= 400:
            try:
                doc = r.json()
                detail = doc.get("detail", r.text)
            except ValueError:
                detail = r.text[:300]
            raise CleanroomError(f"{detail} (HTTP {r.status_code})")
        return r.json()

    def store(self, kind: str, records: list[Any]) -> int:
        import httpx

        params = {"purpose": self.purpose}
        try:
            items = [{"id": r.id, **r.to_doc()} if kind == "users" else r.to_dict()
                     for r in records]  # fmt: skip
            answer = self._answer(
                self.client.post(f"/v1/{kind}", json={kind: items}, params=params)
            )
            return int(answer[{"users": "created", "videos": "written", "events": "stored"}[kind]])
        except httpx.HTTPError as e:
            raise LoadError(f"cannot reach {self.base}: {e}") from None


def text_report(report: Report, limit: int = 50) -> str:
    """The validation report as lines: row numbers and reasons."""
    out = io.StringIO()
    for r in report.rejected[:limit]:
        out.write(f"row {r.row}: {r.reason}\n")
    if len(report.rejected) > limit:
        out.write(f"… and {len(report.rejected) - limit} more (--report FILE keeps them all)\n")
    return out.getvalue()
