"""The clean room's screening desk: which list versions are loaded, the
ownership graph, dismissed false positives — and a ledger entry for every
list load (with its delta), every screening (query, list versions,
candidates, scores, decision) and every dismissal (who overrode what).

Lists are stored as versioned snapshots (compressed JSON); the newest version
of each list is the one screened against. A fresh clean room loads the
bundled lists (OFAC SDN, OFAC consolidated non-SDN, FCC Covered List).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.engine import Connection

from cleanroom.ledger.entries import encode_entry
from cleanroom.ledger.log import Log
from cleanroom.screen.errors import ScreeningInputError
from cleanroom.screen.index import ListIndex, check_batch
from cleanroom.screen.lists import ListSnapshot, Party, bundled_snapshots, delta
from cleanroom.screen.ownership import OwnershipGraph, parse_stakes
from cleanroom.screen.screener import Dismissal, Screener, Screening, query_key
from cleanroom.storage import Database, Migration, migrate

_meta = MetaData()
lists_t = Table(
    "screen_lists",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", String(64), nullable=False, index=True),
    Column("version", String(80), nullable=False),
    Column("title", Text, nullable=False),
    Column("authority", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("published", String(32), nullable=False),
    Column("parties", LargeBinary, nullable=False),  # zlib of the parties' JSON
    Column("count", Integer, nullable=False),
    Column("loaded_by", String(128), nullable=False),
    Column("loaded_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)
dismissals_t = Table(
    "screen_dismissals",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_key", Text, nullable=False),
    Column("list_id", String(64), nullable=False),
    Column("party_id", String(128), nullable=False),
    Column("list_version", String(80), nullable=False),
    Column("by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)
ownership_t = Table(
    "screen_ownership",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(80), nullable=False),
    Column("stakes", LargeBinary, nullable=False),  # zlib of the CSV
    Column("count", Integer, nullable=False),
    Column("loaded_by", String(128), nullable=False),
    Column("loaded_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn, tables=[lists_t, dismissals_t, ownership_t])


MAX_BATCH = 100_000
MIGRATIONS = [Migration("screen", 1, "list snapshots, dismissals, ownership", _create)]


@dataclass(frozen=True)
class LoadResult:
    """A restricted-party list loaded: its version and what changed."""

    list_id: str
    version: str
    previous: str | None
    changed: bool
    added: int
    modified: int
    removed: int
    entry: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "list": self.list_id,
            "version": self.version,
            "previous": self.previous,
            "changed": self.changed,
            "added": self.added,
            "modified": self.modified,
            "removed": self.removed,
            "ledger_index": self.entry,
        }


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


# The name index of a set of list versions, built once per process: building
# it normalises every listed name (seconds for the bundled lists), and every
# clean room a process opens on the same lists shares it. Keyed by the lists'
# stored content itself (a digest of each stored version), not by a claim
# about it.
_INDEXES: OrderedDict[tuple[tuple[str, ...], ...], ListIndex] = OrderedDict()
_INDEXES_KEPT = 4
_INDEXES_LOCK = threading.Lock()


def _index_of(rows: list[Any], snapshot: Callable[[Any], ListSnapshot]) -> ListIndex:
    key = tuple(
        (r.list_id, r.title, r.authority, r.source, r.published,
         hashlib.sha256(r.parties).hexdigest())
        for r in rows
    )  # fmt: skip
    with _INDEXES_LOCK:
        if key in _INDEXES:
            _INDEXES.move_to_end(key)
            return _INDEXES[key]
    index = ListIndex([snapshot(r) for r in rows])
    with _INDEXES_LOCK:
        _INDEXES[key] = index
        while len(_INDEXES) > _INDEXES_KEPT:
            _INDEXES.popitem(last=False)
    return index


class ScreeningDesk:
    """Loads lists, screens, remembers dismissals; records all of it."""

    def __init__(
        self,
        db: Database,
        log: Log,
        *,
        affiliates_from: dt.date | None = None,
        clock: Any = time.time,
    ) -> None:
        self.db = db
        self.log = log
        self.affiliates_from = affiliates_from
        self.clock = clock
        migrate(db, MIGRATIONS)
        self._lock = threading.Lock()
        self._screener: Screener | None = None
        self._generation: tuple[int, int, int] | None = None

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _record(self, entry: dict[str, Any], table: Table, **row: Any) -> int:
        """The ledger entry first (durable), then the row that indexes it."""
        index = self.log.append({"v": 1, "time_ms": self._now(), **entry})
        with self.db.write() as conn:
            conn.execute(table.insert().values(**row, ledger_index=index))
        return index

    # -- lists ----------------------------------------------------------------------

    def ensure_bundled(self, *, by: str) -> list[LoadResult]:
        """Load the bundled lists into a clean room that has none yet."""
        with self.db.read() as conn:
            have = conn.execute(select(func.count()).select_from(lists_t)).scalar_one()
        if have:
            return []
        return [self.load(s, by=by) for s in bundled_snapshots()]

    def current(self, list_id: str) -> ListSnapshot | None:
        with self.db.read_latest() as conn:
            row = conn.execute(
                select(lists_t).where(lists_t.c.list_id == list_id).order_by(lists_t.c.id.desc())
            ).first()
        return self._snapshot(row) if row else None

    def load(self, snapshot: ListSnapshot, *, by: str) -> LoadResult:
        """Make ``snapshot`` the current version of its list. The same content as
        the current version changes nothing (and records nothing)."""
        with self._lock:
            old = self.current(snapshot.list_id)
            if old is not None and old.version == snapshot.version:
                return LoadResult(snapshot.list_id, snapshot.version, old.version, False, 0, 0,
                                  0, None)  # fmt: skip
            d = delta(old, snapshot)
            index = self._record(
                {
                    "type": "screen.list_loaded",
                    "by": by,
                    "list": snapshot.list_id,
                    "title": snapshot.title,
                    "authority": snapshot.authority,
                    "source": snapshot.source,
                    "published": snapshot.published,
                    "version": snapshot.version,
                    "previous": old.version if old else None,
                    "parties": len(snapshot.parties),
                    "delta": d.as_json(),
                },
                lists_t,
                list_id=snapshot.list_id,
                version=snapshot.version,
                title=snapshot.title,
                authority=snapshot.authority,
                source=snapshot.source,
                published=snapshot.published,
                parties=snapshot.packed,
                count=len(snapshot.parties),
                loaded_by=by,
                loaded_ms=self._now(),
            )
            return LoadResult(
                snapshot.list_id, snapshot.version, old.version if old else None, True,
                len(d.added), len(d.changed), len(d.removed), index,
            )  # fmt: skip

    def lists(self) -> list[dict[str, Any]]:
        """Every loaded version, newest first per list, marked current or not."""
        with self.db.read_latest() as conn:
            rows = conn.execute(
                select(
                    lists_t.c.id, lists_t.c.list_id, lists_t.c.version, lists_t.c.title,
                    lists_t.c.authority, lists_t.c.source, lists_t.c.published, lists_t.c.count,
                    lists_t.c.loaded_by, lists_t.c.loaded_ms, lists_t.c.ledger_index,
                ).order_by(lists_t.c.list_id, lists_t.c.id.desc())
            ).all()  # fmt: skip
        seen: set[str] = set()
        out = []
        for r in rows:
            out.append(
                {
                    "list": r.list_id,
                    "version": r.version,
                    "current": r.list_id not in seen,
                    "title": r.title,
                    "authority": r.authority,
                    "source": r.source,
                    "published": r.published,
                    "parties": r.count,
                    "loaded_by": r.loaded_by,
                    "loaded_ms": r.loaded_ms,
                    "ledger_index": r.ledger_index,
                }
            )
            seen.add(r.list_id)
        return out

    @staticmethod
    def _snapshot(row: Any) -> ListSnapshot:
        parties = tuple(Party.from_json(p) for p in _unpack(row.parties))
        return ListSnapshot(
            row.list_id, row.title, row.authority, parties, row.source, row.published
        )

    # -- ownership --------------------------------------------------------------------

    def load_ownership(
        self, text: str, *, by: str, source: str = "ownership.csv"
    ) -> dict[str, Any]:
        graph = parse_stakes(text, source)  # raises before anything is stored
        version = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        index = self._record(
            {
                "type": "screen.ownership_loaded",
                "by": by,
                "version": version,
                "source": source,
                "stakes": len(graph),
                "entities": len(graph.nodes),
            },
            ownership_t,
            version=version,
            stakes=zlib.compress(text.encode()),
            count=len(graph),
            loaded_by=by,
            loaded_ms=self._now(),
        )
        return {"version": version, "stakes": len(graph), "entities": len(graph.nodes),
                "ledger_index": index}  # fmt: skip

    # -- screening ----------------------------------------------------------------------

    def _current_generation(self) -> tuple[int, int, int]:
        with self.db.read_latest() as conn:
            row = conn.execute(
                select(
                    select(func.coalesce(func.max(lists_t.c.id), 0)).scalar_subquery(),
                    select(func.coalesce(func.max(dismissals_t.c.id), 0)).scalar_subquery(),
                    select(func.coalesce(func.max(ownership_t.c.id), 0)).scalar_subquery(),
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    def screener(self) -> Screener:
        """The screener over the current lists (rebuilt when another process, or
        this one, loaded a list or an ownership graph; when only dismissals
        changed, only they are read again)."""
        gen = self._current_generation()
        with self._lock:
            if self._screener is not None and self._generation == gen:
                return self._screener
            with self.db.read_latest() as conn:
                dismissals = [self._dismissal(d) for d in conn.execute(select(dismissals_t))]
            old, before = self._screener, self._generation
            if (
                old is not None
                and before is not None
                and (before[0], before[2]) == (gen[0], gen[2])
            ):
                old.set_dismissals(dismissals)
            else:
                self._screener = self._build(dismissals)
            self._generation = gen
            return self._screener

    def _build(self, dismissals: list[Dismissal]) -> Screener:
        with self.db.read_latest() as conn:
            ids = select(func.max(lists_t.c.id)).group_by(lists_t.c.list_id)
            rows = conn.execute(select(lists_t).where(lists_t.c.id.in_(ids))).all()
            own = conn.execute(select(ownership_t).order_by(ownership_t.c.id.desc())).first()
        if not rows:
            raise ScreeningInputError(
                "no lists are loaded", hint="cleanroom screen lists load FORMAT FILE"
            )
        graph = parse_stakes(zlib.decompress(own.stakes).decode()) if own else OwnershipGraph()
        return Screener(
            _index_of(sorted(rows, key=lambda r: r.list_id), self._snapshot),
            ownership=graph,
            ownership_version=own.version if own else None,
            dismissals=dismissals,
            affiliates_from=self.affiliates_from,
        )

    @staticmethod
    def _dismissal(r: Any) -> Dismissal:
        return Dismissal(r.query_key, r.list_id, r.party_id, r.list_version)

    def screen(
        self,
        name: str,
        schema: str = "any",
        *,
        by: str,
        purpose: str = "",
        record: bool = True,
        threshold: float | None = None,
        limit: int | None = None,
    ) -> tuple[Screening, int | None]:
        """Screen one name (at the request's own ``threshold`` and candidate
        ``limit`` when given); the screening is a ledger entry (its index is
        returned), with the threshold and the matcher's version."""
        s = self.screener().screen(name, schema, threshold=threshold, limit=limit)
        index = self.log.append(self._screening_entry(s, by, purpose)) if record else None
        return s, index

    def _screening_entry(self, s: Screening, by: str, purpose: str) -> dict[str, Any]:
        return {
            "type": "screen.screening",
            "v": 1,
            "time_ms": self._now(),
            "by": by,
            "purpose": purpose,
            **s.ledger_body(),
        }

    def screen_many(
        self,
        queries: list[tuple[str, str]],
        *,
        by: str,
        purpose: str = "",
        threshold: float | None = None,
        limit: int | None = None,
    ) -> list[tuple[Screening, int]]:
        """Screen a batch of (name, schema); every name is checked before any is
        screened, and the screenings go onto the ledger in one bulk append."""
        check_batch(queries, MAX_BATCH, lambda n: f"row {n + 1}")
        screener = self.screener()  # (it refuses a bad threshold or limit on the first name)
        done = [
            screener.screen(name, schema, threshold=threshold, limit=limit)
            for name, schema in queries
        ]
        bodies = [encode_entry(self._screening_entry(s, by, purpose)) for s in done]
        indices = self.log.append_many(bodies) if bodies else []
        return list(zip(done, indices, strict=True))

    def dismiss(
        self, name: str, list_id: str, party_id: str, *, by: str, reason: str
    ) -> dict[str, Any]:
        """Dismiss a hit as a false positive for this party and the list's
        current version (a new version brings it back)."""
        if not reason or not reason.strip():
            raise ScreeningInputError("a dismissal says why the hit is a false positive")
        screening = self.screener().screen(name)
        hit = next(
            (
                h
                for h in screening.hits
                if h.entry.list_id == list_id and h.entry.party.id == party_id
            ),
            None,
        )
        if hit is None:
            raise ScreeningInputError(
                f"{party_id} of {list_id} is not among the candidates for {name!r}",
                hint="screen the name first and dismiss one of its candidates",
            )
        index = self._record(
            {
                "type": "screen.dismissed",
                "by": by,
                "query": screening.query,
                "list": list_id,
                "party_id": party_id,
                "listed_name": hit.entry.party.name,
                "list_version": hit.entry.version,
                "score": round(hit.score, 4),
                "reason": reason.strip(),
            },
            dismissals_t,
            query_key=query_key(name),
            list_id=list_id,
            party_id=party_id,
            list_version=hit.entry.version,
            by=by,
            reason=reason.strip(),
            ms=self._now(),
        )
        return {"list": list_id, "party_id": party_id, "list_version": hit.entry.version,
                "ledger_index": index}  # fmt: skip
