"""Finding entries by type, time, principal and subject commitment: the index
is written with each entry, covers exactly the signed checkpoint, pages newest
first with a cursor, is rebuilt for a log made before it existed, and every
entry found comes with a proof that verifies against the signed root. The
same search over HTTP and on the command line."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import delete, inspect

from cleanroom.ledger import proofs, schema
from cleanroom.ledger.entries import encode_entry
from cleanroom.ledger.errors import RangeError
from cleanroom.ledger.hashing import leaf_hash
from cleanroom.ledger.search import Query, fields_of, indexed_upto, search_page, time_ms_of
from cleanroom.ledger.store import LedgerStore
from cleanroom.storage import Database, migrate
from cleanroom.storage.migrations import schema_migrations
from tests.support import ORIGIN, Api, run_cli

C1 = "c1:" + "1" * 64
C2 = "c1:" + "2" * 64


def _entries() -> list[bytes]:
    out = []
    for i in range(30):
        doc = {"type": ["access", "access.limited", "egress.flow"][i % 3], "v": 1,
               "time_ms": 1_000 + i, "principal": f"p{i % 2}",
               "subjects": [C1] if i % 5 == 0 else [C2]}  # fmt: skip
        out.append(encode_entry(doc))
    out.append(encode_entry({"type": "deletion", "v": 1, "at_ms": 5_000,
                             "deleted": [{"subject": C1}]}))  # fmt: skip
    out.append(b"not json but a valid leaf")
    return out


@pytest.fixture
def store(db: Database, log_signer) -> LedgerStore:
    s = LedgerStore(db, ORIGIN, log_signer)
    s.init()
    s.sequence(_entries())
    s.integrate()
    return s


def _found(store: LedgerStore, **q) -> list[int]:
    return [i for i, _ in store.search(Query(**q))[1]]


def test_search_by_type_namespace_time_principal_and_subject(store: LedgerStore) -> None:
    assert _found(store, type="egress.flow") == list(range(29, -1, -3))
    assert len(_found(store, type="access.*")) == 20  # access and access.limited
    assert _found(store, type="access", since_ms=1_003, until_ms=1_007) == [6, 3]
    assert _found(store, principal="p1", type="access.limited") == [25, 19, 13, 7, 1]
    assert _found(store, subject=C1) == [30, 25, 20, 15, 10, 5, 0]  # the receipt too
    assert _found(store, type="access.lim") == []  # a whole type, not a prefix
    assert _found(store, type="") == list(range(31, -1, -1))[:50]


def test_only_entries_the_signed_checkpoint_covers_are_found(store: LedgerStore) -> None:
    store.sequence([encode_entry({"type": "egress.flow", "v": 1})])  # not integrated yet
    cp, found = store.search(Query(type="egress.flow"))
    assert cp.size == 32 and found[0][0] == 29
    store.integrate()
    assert store.search(Query(type="egress.flow"))[1][0][0] == 32


def test_pages_newest_first_and_every_entry_proves_against_the_root(store: LedgerStore) -> None:
    seen, after = [], None
    while True:
        page = search_page(store, Query(type="access.*", after=after, limit=7), proofs=True)
        for item in page["items"]:
            body = encode_entry(item["entry"])
            assert base64.b64decode(item["leaf_hash"]) == leaf_hash(body)
            root = base64.b64decode(page["checkpoint"]["root"])
            path = [base64.b64decode(h) for h in item["proof"]]
            proofs.verify_inclusion(leaf_hash(body), item["index"],
                                    page["checkpoint"]["size"], path, root)  # fmt: skip
        seen += [i["index"] for i in page["items"]]
        if page["before"] is None:
            break
        after = page["before"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 20


def test_a_log_from_before_the_index_is_indexed_by_its_first_search(
    db: Database, store: LedgerStore, log_signer
) -> None:
    with db.write() as conn:  # as it was before the index existed
        for table in (schema.entry_subjects, schema.entry_index, schema.index_state):
            table.drop(conn)
        m = schema_migrations.c
        conn.execute(delete(schema_migrations).where(m.component == "ledger", m.version >= 2))
    with db.read() as conn:
        assert not inspect(conn).has_table("ledger_entry_index")
    migrate(db, schema.MIGRATIONS)
    assert _found(store, type="deletion") == [30]
    assert _found(store, subject=C1)[0] == 30


def test_appends_leave_the_index_to_the_searches(store: LedgerStore, db: Database) -> None:
    """Appending writes no index row; a search brings the index up to the
    checkpoint it searches, from its mark, replacing what an interrupted run
    left beyond the mark."""
    assert _found(store, type="egress.flow")  # the first search indexed 32 entries
    with db.read() as conn:
        assert indexed_upto(conn) == 32
    store.sequence([encode_entry({"type": "egress.flow", "v": 1, "principal": "p9"})] * 3)
    store.integrate()
    with db.read() as conn:
        assert indexed_upto(conn) == 32  # the appends did not touch it
    with db.write() as conn:  # an interrupted run: rows beyond the mark, the mark not moved
        conn.execute(schema.entry_index.insert().values(idx=33, type="bogus"))
    assert _found(store, principal="p9") == [34, 33, 32]
    assert _found(store, type="bogus") == []
    with db.read() as conn:
        assert indexed_upto(conn) == 35


def test_what_the_index_reads_from_an_entry() -> None:
    row, subjects = fields_of(b'{"type":"x.y","v":1,"at_ms":7,"by":"olga","subject":"' +
                              C2.encode() + b'"}')  # fmt: skip
    assert row == {"type": "x.y", "time_ms": 7, "principal": "olga"} and subjects == [C2]
    row, subjects = fields_of(b'{"type":"x","subjects":["u1","c1:zz"],"time_ms":true}')
    assert row["time_ms"] is None and subjects == []  # no user id, no bad commitment
    assert fields_of(b"[1,2]")[0]["type"] == ""


def test_bad_queries_are_refused() -> None:
    with pytest.raises(RangeError):
        Query(limit=0)
    with pytest.raises(RangeError):
        Query(since_ms=10, until_ms=10)
    assert time_ms_of("2026-12-01") == 1_796_083_200_000
    assert time_ms_of("2026-12-01T01:00:00+01:00") == 1_796_083_200_000
    with pytest.raises(RangeError):
        time_ms_of("yesterday")


def test_the_search_over_http(api: Api) -> None:
    assert api.call("GET", "/v1/users/u1?purpose=support", "alice").status_code == 200
    api.room.log.integrate()
    r = api.client.get("/v1/ledger/entries", params={"type": "access", "principal": "alice",
                                                      "proofs": "true"})  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [i["entry"]["principal"] for i in doc["items"]] == ["alice"]
    assert doc["items"][0]["proof"] and doc["checkpoint"]["size"] > doc["items"][0]["index"]
    pages, cursor = [], None
    while True:
        q = {"type": "access.*", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.client.get("/v1/ledger/entries", params=q).json()
        pages.append([i["index"] for i in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    flat = [i for p in pages for i in p]
    assert len(pages) > 2 and flat == sorted(set(flat), reverse=True)
    for bad in ({"type": "Access"}, {"since_ms": -1}, {"limit": 501}, {"cursor": "@@"},
                {"since_ms": 5, "until_ms": 5}):  # fmt: skip
        r = api.client.get("/v1/ledger/entries", params=bad)
        assert r.status_code in (400, 422), bad
        assert r.headers["content-type"] == "application/problem+json"


def test_the_search_on_the_command_line(api: Api, tmp_path) -> None:
    api.room.log.integrate()
    dd = api.room.data_dir.path
    out = run_cli(["ledger", "search", "--type", "access.*", "--json", "--limit", "2"], dd)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 2 and all(x["entry"]["type"].startswith("access") for x in lines)
    assert "--cursor" in out.stderr
    cursor = out.stderr.split("--cursor ")[1].split()[0]
    more = run_cli(["ledger", "search", "--type", "access.*", "--json", "--cursor", cursor], dd)
    assert json.loads(more.stdout.splitlines()[0])["index"] < lines[-1]["index"]
    table = run_cli(["ledger", "search", "--principal", "app"], dd)
    assert table.returncode == 0 and "app" in table.stdout
    for bad in (["--since", "yesterday"], ["--limit", "0"], ["--cursor", "xyz"]):
        r = run_cli(["ledger", "search", *bad], dd)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
