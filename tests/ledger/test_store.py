"""The stored log on SQLite and PostgreSQL: sequencing, integration, proofs, CAS."""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from cleanroom.ledger import MemoryTree, proofs
from cleanroom.ledger.errors import ConflictError, NotFoundError, RangeError
from cleanroom.ledger.log import Log
from cleanroom.ledger.note import generate_signer, open_note, parse_note
from cleanroom.ledger.store import LedgerStore
from cleanroom.ledger.tiles import decode_bundle, split_hashes, tiles_for_size
from cleanroom.storage import Database
from tests.support import ORIGIN


def test_store_matches_the_memory_tree(db: Database, log_signer) -> None:
    store = LedgerStore(db, ORIGIN, log_signer)
    assert store.init().size == 0
    tree = MemoryTree()
    for n in (1, 255, 1, 300, 700):
        bodies = [os.urandom(20 + i % 50) for i in range(n)]
        first = store.sequence(bodies)
        assert first == tree.size
        for b in bodies:
            tree.append(b)
        cp = store.integrate()
        assert cp is not None and cp.size == tree.size and cp.root == tree.root()
        open_note(cp.note, [log_signer.verifier])
    assert store.integrate() is None
    size = tree.size
    for ref in tiles_for_size(size):
        if ref.is_bundle:
            continue
        data = store.tile(ref.level, ref.index, ref.width)
        assert len(split_hashes(data, ref.width)) == ref.width
    bundle = decode_bundle(store.bundle(1, 256), 256)
    assert bundle[0] == store.entry(256)
    for index in (0, 255, 256, size - 1):
        assert store.inclusion_proof(index) == tree.inclusion_proof(index)
        for old in (1, 256, 257, size):
            assert store.consistency_proof(old, size) == tree.consistency_proof(old, size)
    # Proofs at an older signed size are still served.
    hist = store.signed_history()
    assert [h.size for h in hist] == [0, 1, 256, 257, 557, 1257]
    assert store.inclusion_proof(3, 257) == tree.inclusion_proof(3, 257)
    for older in hist[1:]:
        p = store.consistency_proof(older.size, size)
        proofs.verify_consistency(older.size, size, p, older.root, cp.root)


def test_reading_beyond_the_tree_is_a_clear_error(db: Database, log_signer) -> None:
    store = LedgerStore(db, ORIGIN, log_signer)
    store.init()
    store.sequence([b"a", b"b", b"c"])
    with pytest.raises(NotFoundError):
        store.bundle(0, 3)  # sequenced but not yet in a checkpoint
    store.integrate()
    with pytest.raises(NotFoundError):
        store.tile(0, 0)  # only a partial tile exists
    with pytest.raises(NotFoundError):
        store.tile(0, 0, 4)
    with pytest.raises(NotFoundError):
        store.entry(99)
    with pytest.raises(RangeError):
        store.entry(-1)
    with pytest.raises(RangeError):
        store.inclusion_proof(3)
    with pytest.raises(RangeError):
        store.consistency_proof(2, 4)
    with pytest.raises(NotFoundError):
        store.checkpoint_at(2)
    with pytest.raises(RangeError):
        store.sequence([])
    assert store.latest().size == 3


def test_a_second_origin_on_the_same_database_is_refused(db: Database, log_signer) -> None:
    LedgerStore(db, ORIGIN, log_signer).init()
    other = generate_signer("other.example/log")
    with pytest.raises(ConflictError):
        LedgerStore(db, "other.example/log", other).init()


def test_concurrent_integrators_never_fork(db_url: str, log_signer) -> None:
    """Several 'processes' (own engines) append and integrate at once."""
    stores = [LedgerStore(Database(db_url), ORIGIN, log_signer) for _ in range(3)]
    stores[0].init()
    errors: list[BaseException] = []

    def worker(store: LedgerStore, k: int) -> None:
        try:
            for j in range(15):
                store.sequence([f"{k}-{j}-{i}".encode() for i in range(7)])
                with contextlib.suppress(ConflictError):
                    store.integrate()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    while stores[0].integrate() is not None:
        pass
    final = stores[0].latest()
    assert final.size == 3 * 15 * 7
    tree = MemoryTree()
    for i in range(final.size):
        tree.append(stores[0].entry(i))
    assert tree.root() == final.root
    for h in stores[0].signed_history():
        assert tree.root(h.size) == h.root  # every signed checkpoint is a prefix
    for s in stores:
        s.db.dispose()


def test_group_commit_log(db: Database, log_signer) -> None:
    with Log(db, ORIGIN, log_signer, interval=0.05).start() as log:
        results: list[int] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            for j in range(20):
                i = log.append({"type": "test.entry", "v": 1, "k": k, "j": j})
                with lock:
                    results.append(i)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == list(range(160))
        assert log.sequencer is not None and log.sequencer.batches < 160  # batching happened
        cp = log.wait_for(159, timeout=10)
        assert cp.size == 160
        assert parse_note(cp.note).signatures[0].name == ORIGIN


def test_a_write_committed_with_its_entry_both_or_neither(db: Database, log_signer) -> None:
    """``also``: a write in the transaction that sequences the entry (a served
    feed's record with the entry committing to it) — stored together, or, when
    the write fails, neither (and the appender learns why)."""
    from sqlalchemy import Column, Connection, MetaData, String, Table, select

    table = Table("also_rows", MetaData(), Column("k", String(16), primary_key=True))
    with db.write() as conn:
        table.create(conn)

    def row(k: str):
        def write(conn: Connection) -> None:
            conn.execute(table.insert(), {"k": k})

        return write

    with Log(db, ORIGIN, log_signer, interval=0.05).start() as log:
        first = log.append({"type": "test.entry", "v": 1, "k": "a"}, also=row("a"))
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            log.append({"type": "test.entry", "v": 1, "k": "dup"}, also=row("a"))
        after = log.append({"type": "test.entry", "v": 1, "k": "b"}, also=row("b"))
        assert after == first + 1  # the failed append took no index
        assert log.store.sequenced_size() == 2
    with db.read() as conn:
        assert sorted(conn.execute(select(table.c.k)).scalars()) == ["a", "b"]
    with db.write() as conn:
        table.drop(conn)


def test_a_failing_write_fails_only_its_own_append(db: Database, log_signer) -> None:
    """Appends batched with one whose own write fails are stored (the batch is
    tried again one by one); only that append learns the error."""
    from cleanroom.ledger.sequencer import Sequencer

    store = LedgerStore(db, ORIGIN, log_signer)
    store.init()

    def broken(conn) -> None:
        raise RuntimeError("this record cannot be stored")

    seq = Sequencer(store, max_delay=0.5)  # (the three land in one batch)
    try:
        futs = [seq.submit(b"a"), seq.submit(b"b", also=broken), seq.submit(b"c")]
        assert futs[0].result(10) == 0 and futs[2].result(10) == 1
        with pytest.raises(RuntimeError, match="cannot be stored"):
            futs[1].result(10)
        assert store.sequenced_size() == 2
    finally:
        seq.close()
