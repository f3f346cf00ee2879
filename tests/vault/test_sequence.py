"""Each user's events are numbered in the order they were stored, on SQLite and
PostgreSQL: batch order within a batch, one batch after the other across
concurrent writers, nothing numbered by a batch that stored nothing, and a
database from before the numbering gets its events numbered on migration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cleanroom.gate import Principal
from cleanroom.room import CleanRoom
from cleanroom.room.config import Config, DataDir
from cleanroom.vault import Conflict, Event, User, Video
from tests.support import ORIGIN

APP = Principal("app", "service", "platform", "ingest", "US", 1)


def _open(tmp_path: Path, db_url: str, log_signer) -> CleanRoom:
    dd = DataDir(tmp_path / "dd")
    if not dd.exists():
        dd.save(Config(origin=ORIGIN, database_url=db_url))
        dd.write_key("log", log_signer)
    return CleanRoom.open(dd, background=False)


@pytest.fixture
def room(tmp_path: Path, db_url: str, log_signer) -> Iterator[CleanRoom]:
    r = _open(tmp_path, db_url, log_signer)
    r.principals.add(APP)
    g = r.gate
    ids = ["a", "b"]
    users = [User(u, "US") for u in ids]
    r.vault.put_users(g.require(APP, "write", "Profile", subjects=ids), users)
    r.vault.put_videos(g.require(APP, "write", "Videos"), [Video(f"v{i}", "c") for i in range(5)])
    yield r
    r.close()


def _store(room: CleanRoom, events: list[Event]):
    grant = room.gate.require(APP, "write", "Events", subjects=sorted({e.user for e in events}))
    return room.vault.store_events(grant, events)


def _after(room: CleanRoom, user: str, after: int = 0):
    me = room.system("recommender")
    grant = room.gate.require(me, "read", "Events", purpose="recommendation", subjects=[user])
    return room.vault.events_after(grant, user, after)


def test_each_users_events_are_numbered_in_batch_order(room: CleanRoom) -> None:
    first = _store(
        room,
        [
            Event("e1", "a", "v1", "like", 5_000),
            Event("e2", "b", "v2", "view", 1_000, 9_000),
            Event("e3", "a", "v3", "skip", 1_000),  # earlier in time, later in order
        ],
    )
    assert first.count == 3 and first.ranges == {"a": (1, 2), "b": (1, 1)}
    second = _store(room, [Event("e4", "a", "v4", "like", 7_000)])
    assert second.ranges == {"a": (3, 3)}
    last, events = _after(room, "a")
    assert last == 3
    assert [(s, v, k, ts) for s, v, k, ts, _ in events] == [
        (1, "v1", "like", 5_000),
        (2, "v3", "skip", 1_000),
        (3, "v4", "like", 7_000),
    ]
    assert _after(room, "a", 2) == (3, [(3, "v4", "like", 7_000, 0)])
    assert _after(room, "b", 1) == (1, [])
    # several users in one read: the same as one by one (an unknown user left out)
    me = room.system("recommender")
    grant = room.gate.require(me, "read", "Events", purpose="recommendation", all_subjects=True)
    many = room.vault.events_after_many(grant, {"a": 1, "b": 0, "nobody": 0})
    assert many == {"a": _after(room, "a", 1), "b": _after(room, "b", 0)}


def test_a_batch_that_stores_nothing_numbers_nothing(room: CleanRoom) -> None:
    batch = [Event("e1", "a", "v1", "like", 1), Event("e2", "a", "v2", "like", 2)]
    assert _store(room, batch).ranges == {"a": (1, 2)}
    retry = _store(room, batch)  # the same batch again: stored before
    assert (retry.count, retry.ranges) == (0, {})
    with pytest.raises(Conflict):  # one id taken by another event: nothing stored
        _store(room, [Event("e3", "a", "v3", "like", 3), Event("e1", "a", "v4", "like", 4)])
    assert _after(room, "a")[0] == 2
    assert _store(room, [Event("e3", "a", "v3", "like", 3)]).ranges == {"a": (3, 3)}


def test_concurrent_writers_number_one_users_events_without_gaps(room: CleanRoom) -> None:
    def writer(w: int) -> None:
        for k in range(10):
            _store(room, [Event(f"w{w}-{k}-{j}", "a", f"v{j}", "like", k) for j in range(3)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last, events = _after(room, "a")
    assert last == 120
    assert [s for s, *_ in events] == list(range(1, 121))
    # each batch's three events stayed together and in their order
    videos = [v for _, v, *_ in events]
    assert videos == ["v0", "v1", "v2"] * 40


def test_events_stored_before_numbering_are_numbered_by_time(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    room = _open(tmp_path, db_url, log_signer)
    room.principals.add(APP)
    g = room.gate
    room.vault.put_users(g.require(APP, "write", "Profile", subjects=["a"]), [User("a", "US")])
    room.vault.put_videos(g.require(APP, "write", "Videos"), [Video("v1", "c"), Video("v2", "c")])
    _store(room, [Event("x2", "a", "v1", "like", 20), Event("x1", "a", "v2", "skip", 10)])
    with room.db.write() as conn:  # back to the first schema, events and all
        conn.execute(text("DROP INDEX vault_events_user_seq"))
        conn.execute(text("ALTER TABLE vault_events DROP COLUMN seq"))
        conn.execute(text("ALTER TABLE vault_users DROP COLUMN events"))
        conn.execute(
            text("DELETE FROM schema_migrations WHERE component = 'vault' AND version = 2")
        )
    room.close()
    room = _open(tmp_path, db_url, log_signer)
    try:
        last, events = _after(room, "a")
        assert last == 2
        assert [(s, v) for s, v, *_ in events] == [(1, "v2"), (2, "v1")]
        assert _store(room, [Event("x3", "a", "v1", "like", 5)]).ranges == {"a": (3, 3)}
    finally:
        room.close()
