"""Faults of a clean room on several nodes, against the real servers: each
node a ``cleanroom serve --node`` process on one PostgreSQL database (a schema
of its own), one Redis database (keys under the clean room's prefix) and a
JetStream stream of its own.

After each fault — a node killed (SIGKILL) while it stores events and while
it serves feeds, the trainer killed, the NATS server killed and restarted, Redis
flushed, a node frozen while the others go on — the same four things hold:

- every acknowledged event is in the vault exactly once, each user's events
  numbered 1..n without a gap, and every announcement of it published;
- every user's online state in Redis equals the fold of their stored events
  (``cleanroom cluster check``), once the nodes have caught up;
- every feed that was answered is on the ledger and replays, from another
  node, to the list the ledger committed;
- the ledger verifies (the oversight body's monitor, from the log's tiles)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from cleanroom.ledger.serving import ServerProcess, free_port
from cleanroom.oversight import Watcher
from cleanroom.room.config import DataDir
from cleanroom.storage import Database
from tests.support import USER, drop_cluster_traces, feed_events, run_cli, running_api

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

USERS, VIDEOS = 20, 60
NOW = int(time.time() * 1000)


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> float:
    """Seconds until ``cond()`` held (fails after ``timeout``)."""
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - t


class Room:
    """A seeded clean room and its nodes (server processes)."""

    def __init__(self, tmp_path: Path, db_url: str, log_signer, state: str, bus: str) -> None:
        self.tmp_path, self.log_signer = tmp_path, log_signer
        with running_api(tmp_path, db_url, log_signer) as a:
            for u in range(USERS):
                assert a.call("PUT", f"/v1/users/u{u}", "app", json=USER).status_code == 201
            videos = [
                {"id": f"v{i}", "creator": f"c{i % 9}", "created_ms": NOW - 5 * 86_400_000}
                for i in range(VIDEOS)
            ]
            assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).is_success
            r = a.call("POST", "/v1/events", "app", json={"events": feed_events(USERS, VIDEOS, 20)})
            assert r.status_code == 200, r.text
            self.tokens = dict(a.tokens)
        self.dd = DataDir(tmp_path / "dd")
        self.state, self.bus = state, bus
        assert run_cli(["init", "--state", state, "--bus", bus], self.dd.path).returncode == 0
        self.nodes: dict[str, ServerProcess] = {}
        self.acked: list[str] = []
        self.answered: list[dict] = []
        self._batch = 0
        self.closed = False

    def start(self, *names: str) -> None:
        started = [ServerProcess(self.dd.path, node=n) for n in names]
        for name, node in zip(names, started, strict=True):
            self.nodes[name] = node.wait_ready(60)
        for name in names:
            wait_for(lambda n=name: self.health(n).get("model") is not None, 90, f"{name}'s model")

    def health(self, name: str) -> dict:
        try:
            return httpx.get(self.nodes[name].url + "/healthz", timeout=5).json()
        except httpx.HTTPError:
            return {}

    def url(self, name: str) -> str:
        return self.nodes[name].url

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", "Connection": "close"}

    # -- what clients do -----------------------------------------------------------------

    def batch(self, size: int = 25) -> list[dict]:
        self._batch += 1
        b = self._batch
        return [
            {
                "id": f"f{b}-{i}",
                "user": f"u{(b * 7 + i) % USERS}",
                "video": f"v{(b * 13 + i * 5) % VIDEOS}",
                "kind": "like" if (b + i) % 3 == 0 else "view",
                "ts_ms": NOW + b * 100 + i,
                "watch_ms": 20_000 if (b + i) % 2 else 900,
            }
            for i in range(size)
        ]

    def send(self, name: str, batch: list[dict]) -> bool:
        """One batch to one node: True once it acknowledged it."""
        try:
            r = httpx.post(
                self.url(name) + "/v1/events", json={"events": batch}, headers=self.h("app"),
                timeout=20,
            )  # fmt: skip
        except httpx.HTTPError:
            return False
        assert r.status_code == 200, r.text  # a node that answers stores it
        self.acked.extend(e["id"] for e in batch)
        return True

    def feed(self, name: str, seed: str) -> bool:
        try:
            r = httpx.get(
                self.url(name) + "/v1/feed", params={"limit": 8, "seed": seed},
                headers=self.h("ulla"), timeout=20,
            )  # fmt: skip
        except httpx.HTTPError:
            return False
        assert r.status_code == 200, r.text
        self.answered.append(r.json())
        return True

    @contextmanager
    def traffic(self, ingest: str | None, serve: str | None) -> Iterator[dict[str, list]]:
        """Batches of events to ``ingest`` and feeds from ``serve``, in two
        threads, until the block ends or the node stops answering; what was
        not answered is in the result (``unsent``), to send elsewhere."""
        stop = threading.Event()
        left: dict[str, list] = {"unsent": [], "feeds": []}

        def ingesting() -> None:
            while not stop.is_set():
                b = self.batch()
                if not self.send(ingest, b):
                    left["unsent"].append(b)
                    return

        def serving() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                if not self.feed(serve, f"{serve}-{n}-{time.monotonic_ns()}"):
                    return

        threads = [
            threading.Thread(target=f) for f, on in ((ingesting, ingest), (serving, serve)) if on
        ]
        for t in threads:
            t.start()
        try:
            yield left
        finally:
            stop.set()
            for t in threads:
                t.join(60)

    # -- what must hold ------------------------------------------------------------------

    def verify(self, via: str) -> dict[str, float]:
        """The four properties (see the module), asked of node ``via``; the
        seconds the states took to agree with the vault."""
        figures: dict[str, float] = {}
        db = Database(self.dd.database_url())
        try:
            with db.read() as conn:
                rows = conn.execute(text("SELECT id, user_id, seq FROM vault_events")).all()
                counts = dict(conn.execute(text("SELECT id, events FROM vault_users")).all())
        finally:
            db.dispose()
        ids = [r.id for r in rows]
        assert len(ids) == len(set(ids))
        assert set(self.acked) <= set(ids), set(self.acked) - set(ids)
        seqs: dict[str, list[int]] = {}
        for r in rows:
            seqs.setdefault(r.user_id, []).append(r.seq)
        for user, got in seqs.items():
            assert sorted(got) == list(range(1, len(got) + 1)), user
            assert counts[user] == len(got), user

        def unpublished() -> int:
            db = Database(self.dd.database_url())
            try:
                with db.read() as conn:
                    q = "SELECT count(*) FROM cluster_outbox WHERE published_ms IS NULL"
                    return conn.execute(text(q)).scalar_one()
            finally:
                db.dispose()

        # what a node committed and could not announce, the trainer's node sends
        figures["outbox_drained_s"] = wait_for(lambda: unpublished() == 0, 60, "the outbox")

        def states_agree() -> bool:
            r = run_cli(["cluster", "check", "--json"], self.dd.path)
            self.check = json.loads(r.stdout)
            assert not self.check["orphans"], self.check
            return r.returncode == 0

        figures["states_agree_s"] = wait_for(states_agree, 60, "states equal to the vault's fold")
        assert self.check["users"] == USERS and self.check["held"] > 0, self.check

        url = self.url(via)
        last = max((f["ledger_index"] for f in self.answered), default=-1)
        wait_for(lambda: self.health(via)["log"]["size"] > last, 60, "the ledger's sequencing")
        w = Watcher(url + "/log/", self.log_signer.verifier, self.tmp_path / f"mon-{via}")
        assert w.run_once().new_alerts == []
        on_ledger = {row[1] for row in w.served()}
        assert {f["feed"] for f in self.answered} <= on_ledger
        report, alerts = w.replay(url, self.tokens["olga"], sample=100_000)
        assert (report.replayed, report.unavailable, report.mismatched) == (
            len(on_ledger), 0, 0
        ), report  # fmt: skip
        assert alerts == []
        figures["feeds_replayed"] = report.replayed
        return figures

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for node in self.nodes.values():
            node.kill()
        drop_cluster_traces(self.dd.database_url(), self.state, self.bus)


@pytest.fixture
def room_factory(tmp_path: Path, pg_url: str, log_signer, redis_url: str) -> Iterator:
    made: list[Room] = []

    def make(bus: str) -> Room:
        made.append(Room(tmp_path, pg_url, log_signer, redis_url, bus))
        return made[-1]

    yield make
    for r in made:
        r.close()


def report(name: str, figures: dict) -> None:
    """The figures of a fault (printed with -s; the closing note quotes them)."""
    print(f"\n[fault] {name}: {json.dumps(figures)}")


def test_nodes_killed_while_storing_and_serving(room_factory, nats_url: str) -> None:
    room = room_factory(nats_url)
    room.start("a")  # the first node: the trainer
    room.start("b", "c")
    assert room.health("a")["model"] == room.health("c")["model"]
    # events stored through b and feeds served by c, both killed mid-stream
    with room.traffic(ingest="b", serve="c") as left:
        wait_for(lambda: len(room.acked) >= 200 and len(room.answered) >= 20, 60)
        room.nodes["b"].kill()
        room.nodes["c"].kill()
    # the client sends what got no answer to a node that answers
    for batch in left["unsent"]:
        assert room.send("a", batch)
    # b comes back under its name: it follows the stream from where it left off
    room.start("b")
    figures = room.verify(via="b")
    # the trainer killed while it serves: b takes over (the lease), feeds go on
    assert room.health("a")["model"] == room.health("b")["model"]
    with room.traffic(ingest="a", serve="a") as left:
        wait_for(lambda: len(room.answered) >= 50, 60)
        room.nodes["a"].kill()
    for batch in left["unsent"]:
        assert room.send("b", batch)
    before = len(room.answered)
    for n in range(10):
        assert room.feed("b", f"after-{n}")
    assert len(room.answered) == before + 10
    figures.update({f"after_trainer_{k}": v for k, v in room.verify(via="b").items()})
    figures["acked_events"] = len(room.acked)
    report("kill -9", figures)


@contextmanager
def own_nats(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A NATS server with JetStream of this test's own (its own port and
    store): its URL, a function killing it (SIGKILL), one starting it again."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(binary):
        pytest.fail("nats-server is not installed (apt install nats-server)")
    port, store = free_port("127.0.0.1"), tmp_path / "jetstream"
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(lambda: _listening(port), 20, "nats-server to listen")

    def kill() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait()

    start()
    try:
        yield f"nats://127.0.0.1:{port}", kill, start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_nats_server_restarts(room_factory, tmp_path: Path) -> None:
    with own_nats(tmp_path) as (url, kill, start):
        room = room_factory(url)
        room.start("a")
        room.start("b")
        handled = room.health("b")["bus"]["handled"]
        with room.traffic(ingest="a", serve="b"):
            wait_for(lambda: len(room.acked) >= 100, 60)
            kill()
            acked = len(room.acked)
            # events are acknowledged while the bus is away: the database has them
            t = time.monotonic()
            wait_for(lambda: len(room.acked) >= acked + 100, 60, "events stored without a bus")
            figures = {"events_acked_without_bus": len(room.acked) - acked}
            figures["their_rate_per_s"] = round(
                figures["events_acked_without_bus"] / (time.monotonic() - t)
            )
            fresh = [{"id": "new1", "creator": "cn", "created_ms": int(time.time() * 1000)}]
            r = httpx.post(room.url("a") + "/v1/videos", json={"videos": fresh},
                           headers=room.h("app"), timeout=20)  # fmt: skip
            assert r.status_code == 200, r.text
            start()
            wait_for(lambda: len(room.acked) >= acked + 300, 60)
        # the outbox relay sends what the bus missed; b follows it
        figures["caught_up_s"] = wait_for(
            lambda: (
                room.health("b")["bus"]["lag"] == 0
                and room.health("b")["bus"]["handled"] > handled + 10
            ),
            60,
            "b to follow the stream again",
        )
        figures.update(room.verify(via="b"))
        figures["acked_events"] = len(room.acked)
        report("NATS restart", figures)
        room.close()  # (while its NATS server runs: its stream goes too)


def test_redis_is_flushed(room_factory, nats_url: str, redis_url: str) -> None:
    room = room_factory(nats_url)
    room.start("a")
    room.start("b")
    client = redis.Redis.from_url(redis_url)
    with room.traffic(ingest="a", serve="b"):
        wait_for(lambda: len(room.acked) >= 150 and len(room.answered) >= 15, 60)
        before = len(list(client.scan_iter(match="cleanroom:*", count=1000)))
        client.flushdb()  # (this test worker's own Redis database)
        answered = len(room.answered)
        wait_for(lambda: len(room.answered) >= answered + 20, 60, "feeds after the flush")
    figures = room.verify(via="a")
    figures["keys_flushed"] = before
    figures["acked_events"] = len(room.acked)
    report("Redis flush", figures)
    # the check finds a state that is not the fold (here, altered in Redis)
    key = next(k for k in client.scan_iter(match="cleanroom:*:st:u3"))
    doc = json.loads(client.hget(key, "doc"))
    doc["l"]["v59"] = NOW  # (liked)
    client.hset(key, "doc", json.dumps(doc))
    r = run_cli(["cluster", "check"], room.dd.path)
    assert r.returncode == 1 and "1 differ" in r.stdout and "u3" in r.stdout, r.stdout
    client.close()


def test_a_stopped_node_catches_up_from_the_stream(room_factory, nats_url: str) -> None:
    room = room_factory(nats_url)
    room.start("a")
    room.start("b")
    handled = room.health("b")["bus"]["handled"]
    b = room.nodes["b"].proc.pid
    os.killpg(b, signal.SIGSTOP)  # b misses everything from here
    try:
        for _ in range(30):
            assert room.send("a", room.batch())
        fresh = [{"id": f"new{i}", "creator": "cn", "created_ms": int(time.time() * 1000)}
                 for i in range(3)]  # fmt: skip
        r = httpx.post(room.url("a") + "/v1/videos", json={"videos": fresh},
                       headers=room.h("app"), timeout=20)  # fmt: skip
        assert r.status_code == 200
    finally:
        os.killpg(b, signal.SIGCONT)
    t = wait_for(
        lambda: room.health("b").get("bus", {}).get("handled", 0) >= handled + 31, 60,
        "b to catch up from the stream",
    )  # fmt: skip
    assert room.health("b")["bus"]["lag"] == 0
    figures = {"catch_up_s": t, **room.verify(via="b")}
    report("stopped node", figures)
