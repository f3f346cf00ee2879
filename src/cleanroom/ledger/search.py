"""Finding entries: a search index over the log, kept beside the entries.

The log itself is an append-only list of canonical bodies; nothing in it is
keyed by what an entry is about. This index is: each sequenced entry gets a row
of its ``type``, its time (``time_ms`` or ``at_ms``, when it has one), the
principal it names (``principal`` or ``by``) and one row per subject
commitment it lists (``subjects`` or ``subject``). The index is derived state
and is kept off the append path (it halved bulk appends when written with
each entry): a search first brings it up to the signed checkpoint it searches
(``LedgerStore.index_upto``), a chunk a transaction from a mark of how far it
goes, so a log made before the index existed is indexed by its first search.

The index is a convenience, not evidence: every entry a search returns is read
from the log and comes with its inclusion proof against a signed checkpoint
(the console and ``cleanroom ledger search`` show it), so an index that lied
could hide an entry but never invent or alter one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, func, select, update

from cleanroom.ledger.errors import RangeError
from cleanroom.ledger.hashing import b64, leaf_hash
from cleanroom.ledger.schema import entry_index, entry_subjects, index_state

MAX_PAGE = 500
_COMMITMENT = re.compile(r"^c[0-9]+:[0-9a-f]{16,64}$")
_FIELD = 200  # longer type or principal values are not indexed (the entry still is)


@dataclass(frozen=True)
class Query:
    """What to look for; every field narrows the search (all optional).

    ``type`` matches a whole type or, ending in ``.*``, a namespace
    (``access.*`` finds ``access`` and ``access.limited``). Times are
    milliseconds since the epoch, ``since_ms`` inclusive, ``until_ms``
    exclusive. ``after`` is the index the previous page ended at (newest first:
    the next page holds smaller indices)."""

    type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    principal: str | None = None
    subject: str | None = None
    after: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise RangeError(f"a page holds 1 to {MAX_PAGE} entries, not {self.limit}")
        since, until = self.since_ms, self.until_ms
        if since is not None and until is not None and until <= since:
            raise RangeError("until_ms must be after since_ms")


def time_ms_of(text: str, what: str = "time") -> int:
    """Milliseconds since the epoch from ``text``: digits as milliseconds, or
    an ISO 8601 date or time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise RangeError(
            f"{what} takes milliseconds since the epoch or ISO 8601, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def fields_of(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """The index row of one canonical entry body (without ``idx``) and the
    subject commitments it lists."""
    try:
        doc = orjson.loads(body)  # (a chunk of entries at a time: twice as fast as json)
    except orjson.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    etype = doc.get("type")
    row: dict[str, Any] = {
        "type": etype[:_FIELD] if isinstance(etype, str) else "",
        "time_ms": entry_time_ms(doc),
        "principal": entry_principal(doc),
    }
    return row, subject_commitments(doc)


def subject_commitments(doc: dict[str, Any]) -> list[str]:
    """The subject commitments an entry lists: ``subjects``, ``subject``, and
    the ``subject`` of each item of ``deleted`` (a deletion's receipt)."""
    listed = doc.get("subjects")
    found = list(listed) if isinstance(listed, list) else []
    found.append(doc.get("subject"))
    deleted = doc.get("deleted")
    if isinstance(deleted, list):
        found.extend(d.get("subject") for d in deleted if isinstance(d, dict))
    return sorted({s for s in found if isinstance(s, str) and _COMMITMENT.match(s)})


def entry_time_ms(doc: dict[str, Any]) -> int | None:
    """When an entry says it happened (``time_ms`` or ``at_ms``), if it says."""
    return _first_int(doc, ("time_ms", "at_ms"))


def entry_principal(doc: dict[str, Any]) -> str | None:
    """The principal an entry names (``principal`` or ``by``), if any."""
    return _first_str(doc, ("principal", "by"))


SUMMARY_FIELDS = ("decision", "action", "resource", "purpose", "kind", "status", "version")


def entry_summary(doc: dict[str, Any], width: int = 80) -> str:
    """A one-line summary of an entry's most telling fields."""
    parts = [f"{k}={doc[k]}" for k in SUMMARY_FIELDS if isinstance(doc.get(k), str | int)]
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_int(doc: dict[str, Any], names: Iterable[str]) -> int | None:
    for n in names:
        v = doc.get(n)
        if type(v) is int and 0 <= v < 2**63:
            return v
    return None


def _first_str(doc: dict[str, Any], names: Iterable[str]) -> str | None:
    for n in names:
        v = doc.get(n)
        if isinstance(v, str) and 0 < len(v) <= _FIELD:
            return v
    return None


def indexed_upto(conn: Connection, lock: bool = False) -> int:
    """How many entries the index covers (``lock``: hold the row until the
    transaction ends, so one process indexes a range)."""
    q = select(index_state.c.upto).where(index_state.c.id == 1)
    upto = conn.execute(q.with_for_update() if lock else q).scalar_one_or_none()
    return 0 if upto is None else int(upto)


def index_entries(
    conn: Connection, start: int, end: int, entries: Iterable[tuple[int, bytes]]
) -> None:
    """Index the sequenced entries ``start`` to ``end`` (exclusive), given as
    ``(index, body)``, and move the index's mark to ``end`` (in the caller's
    transaction; rows of the range left by an interrupted run are replaced)."""
    rows, subjects = [], []
    for idx, body in entries:
        row, commitments = fields_of(body)
        rows.append({"idx": idx, **row})
        subjects.extend({"commitment": c, "idx": idx} for c in commitments)
    conn.execute(delete(entry_index).where(entry_index.c.idx >= start))
    conn.execute(delete(entry_subjects).where(entry_subjects.c.idx >= start))
    if rows:
        conn.execute(entry_index.insert(), rows)
    if subjects:
        conn.execute(entry_subjects.insert(), subjects)
    if conn.execute(update(index_state).values(upto=end)).rowcount == 0:
        conn.execute(index_state.insert().values(id=1, upto=end))


def search(conn: Connection, q: Query, below: int) -> list[int]:
    """Indices of entries below ``below`` (a signed size) that match ``q``,
    newest first, at most ``q.limit``."""
    t = entry_index.c
    where = [t.idx < below]
    if q.after is not None:
        where.append(t.idx < q.after)
    if q.type:
        if q.type.endswith(".*"):
            ns = q.type[:-2]
            where.append((t.type == ns) | (func.substr(t.type, 1, len(ns) + 1) == ns + "."))
        else:
            where.append(t.type == q.type)
    if q.since_ms is not None:
        where.append(t.time_ms >= q.since_ms)
    if q.until_ms is not None:
        where.append(t.time_ms < q.until_ms)
    if q.principal:
        where.append(t.principal == q.principal)
    stmt = select(t.idx).where(and_(*where))
    if q.subject:
        s = entry_subjects.c
        stmt = stmt.join(entry_subjects, s.idx == t.idx).where(s.commitment == q.subject)
    stmt = stmt.order_by(t.idx.desc()).limit(q.limit)
    return [int(i) for i in conn.execute(stmt).scalars()]


def search_page(store: Any, q: Query, proofs: bool = False) -> dict[str, Any]:
    """One page of a search as the API and the CLI give it: the entries (index,
    leaf hash, entry, with ``proofs`` the inclusion proof), the checkpoint they
    are proved against, and ``before`` — where the next page starts (None: no
    more)."""
    cp, found = store.search(q)
    items = []
    for idx, body in found:
        item: dict[str, Any] = {
            "index": idx,
            "leaf_hash": b64(leaf_hash(body)),
            "entry": json.loads(body),
        }
        if proofs:
            item["proof"] = [b64(h) for h in store.inclusion_proof(idx, cp.size)]
        items.append(item)
    return {
        "items": items,
        "before": found[-1][0] if len(found) == q.limit else None,
        "checkpoint": {"size": cp.size, "root": b64(cp.root), "note": cp.note},
    }


def counts_by_type(conn: Connection, below: int) -> dict[str, int]:
    """How many entries of each type lie below ``below``."""
    t = entry_index.c
    rows = conn.execute(
        select(t.type, func.count()).where(t.idx < below).group_by(t.type).order_by(t.type)
    ).all()
    return {str(k): int(n) for k, n in rows}
