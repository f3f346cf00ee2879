"""The cluster's command-line contract: ``init --bus --state`` writes them to
the configuration, a malformed URL is one line and exit code 2 with nothing
written, ``serve --node`` names the node in /healthz, and ``cluster status``
lists the nodes with their live models, the bus and the state store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from cleanroom.ledger.serving import ServerProcess
from cleanroom.room.config import DataDir
from tests.support import run_cli

NATS = "nats://127.0.0.1:4222"


def test_init_writes_the_bus_and_the_state_store(tmp_path: Path, redis_url: str) -> None:
    dd = tmp_path / "dd"
    r = run_cli(["init", "--bus", NATS, "--state", redis_url, "--json"], dd)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["bus"], out["state"]) == (NATS, redis_url)
    config = DataDir(dd).load()
    assert (config.bus_url, config.state_url) == (NATS, redis_url)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bus", "http://127.0.0.1:4222"], "bus URL must be nats://HOST:PORT"),
        (["--state", "redis://127.0.0.1:6379/one"], "the Redis database must be a number"),
        (["--state", "postgresql://x/y"], "state store URL must be redis://HOST:PORT/N"),
    ],
)
def test_a_malformed_url_is_refused_and_nothing_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    dd = tmp_path / "dd"
    r = run_cli(["init", *args], dd)
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not dd.exists()
    # an existing data directory keeps its configuration
    assert run_cli(["init"], dd).returncode == 0
    before = (dd / "config.json").read_text()
    assert run_cli(["init", *args], dd).returncode == 2
    assert (dd / "config.json").read_text() == before


def test_nodes_name_themselves_and_the_status_lists_them(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    dd = tmp_path / "dd"
    r = run_cli(["init", "--database-url", pg_url, "--state", redis_url, "--bus", NATS], dd)
    assert r.returncode == 0, r.stderr
    nodes = [ServerProcess(dd, node=name) for name in ("alpha", "beta")]
    try:
        for n in nodes:
            n.wait_ready(60)
        for n, name in zip(nodes, ("alpha", "beta"), strict=True):
            health = httpx.get(n.url + "/healthz", timeout=10).json()
            assert health["node"] == name and health["bus"]["url"] == NATS
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until both models are live
            status = json.loads(run_cli(["cluster", "status", "--json"], dd).stdout)
            if all(n["info"]["model"] for n in status["nodes"]):
                break
            time.sleep(0.5)
        assert [n["name"] for n in status["nodes"]] == ["alpha", "beta"]
        assert all(n["up"] and n["info"]["state_store"] == "redis" for n in status["nodes"])
        assert status["bus"]["ok"] and status["state_store"]["ok"]
        assert {n["url"] for n in status["nodes"]} == {n.url for n in nodes}
        text = run_cli(["cluster", "status"], dd).stdout
        assert "alpha" in text and "beta" in text and "state store: redis" in text
    finally:
        for n in nodes:
            n.stop()
    # stopped on purpose (SIGTERM) is not silent: each said so at its end
    status = json.loads(run_cli(["cluster", "status", "--json"], dd).stdout)
    assert [(n["name"], n["state"], n["up"]) for n in status["nodes"]] == [
        ("alpha", "stopped", False),
        ("beta", "stopped", False),
    ]
    assert "stopped" in run_cli(["cluster", "status"], dd).stdout


def test_a_node_that_stops_beating_is_silent_one_that_stopped_says_so(tmp_path: Path) -> None:
    from sqlalchemy import update

    from cleanroom.cluster.nodes import Nodes, nodes_t
    from cleanroom.storage import Database

    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    nodes = Nodes(db)
    for name in ("died", "ended", "live"):
        nodes.beat(name, "", {}, 0)
    nodes.stopped("ended")
    with db.write() as conn:
        conn.execute(update(nodes_t).where(nodes_t.c.name == "died").values(seen_ms=0))
    assert {n["name"]: n["state"] for n in nodes.list()} == {
        "died": "silent",
        "ended": "stopped",
        "live": "up",
    }
    nodes.beat("ended", "", {}, 0)  # a name used again is up again
    assert {n["name"]: n["up"] for n in nodes.list()}["ended"] is True
    db.dispose()


def test_a_check_without_a_shared_state_store_is_refused(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    r = run_cli(["cluster", "check"], dd)
    assert r.returncode == 2 and "no shared state store" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_node_without_its_state_store_or_bus_is_refused_in_one_line(
    tmp_path: Path, redis_url: str
) -> None:
    dd = tmp_path / "dd"
    assert run_cli(["init", "--state", "redis://127.0.0.1:1/0", "--bus", NATS], dd).returncode == 0
    for args in (["cluster", "check"], ["serve", "--port", "1"]):
        r = run_cli(args, dd)
        assert r.returncode == 2 and "the state store at redis://127.0.0.1:1/0 does not" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    no_bus = "nats://127.0.0.1:1"
    assert run_cli(["init", "--state", redis_url, "--bus", no_bus], dd).returncode == 0
    r = run_cli(["serve", "--port", "1"], dd)
    assert r.returncode == 2 and "the event bus at nats://127.0.0.1:1 does not answer" in r.stderr
