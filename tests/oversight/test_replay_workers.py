"""The replay audit against a server with two worker processes, each a node
of the clean room (a shared Redis and NATS JetStream): the feeds either
served are kept in the database, so one replay request, whichever worker it
reaches, answers for every feed, and the whole sample is audited. Without a
state store and a bus, ``--workers 2`` is refused in one line."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from cleanroom.ledger.serving import ServerProcess
from cleanroom.oversight import Watcher
from cleanroom.room.config import DataDir
from tests.support import NOW, USER, drop_cluster_traces, feed_events, run_cli, running_api

pytestmark = pytest.mark.slow


def test_a_two_worker_server_is_audited_in_full(
    tmp_path: Path, db_url: str, log_signer, redis_url: str, nats_url: str
) -> None:
    with running_api(tmp_path, db_url, log_signer) as a:
        for u in range(30):
            assert a.call("PUT", f"/v1/users/u{u}", "app", json=USER).status_code in (200, 201)
        videos = [{"id": f"v{i}", "creator": f"c{i % 9}", "created_ms": NOW - 86_400_000}
                  for i in range(60)]  # fmt: skip
        assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).status_code == 200
        assert a.call("POST", "/v1/events", "app", json={"events": feed_events(30, 60, 20)})
        ulla, olga = a.tokens["ulla"], a.tokens["olga"]
    dd = DataDir(tmp_path / "dd")
    r = run_cli(["serve", "--workers", "2"], dd.path)
    assert r.returncode == 2 and "nodes share a state store and a bus" in r.stderr
    assert run_cli(["init", "--state", redis_url, "--bus", nats_url], dd.path).returncode == 0
    server = ServerProcess(dd.path, workers=2, node="w").wait_ready(60)
    try:
        served: list[dict] = []
        deadline = time.monotonic() + 120
        while len(served) < 30 and time.monotonic() < deadline:
            # a new connection each time: the kernel hands it to either worker
            r = httpx.get(
                server.url + "/v1/feed",
                params={"limit": 5, "seed": f"w{len(served)}"},
                headers={"Authorization": f"Bearer {ulla}", "Connection": "close"},
            )
            if r.status_code == 503:  # a worker still training its first model
                time.sleep(0.2)
                continue
            assert r.status_code == 200, r.text
            served.append(r.json())
        last = max(f["ledger_index"] for f in served)
        while httpx.get(server.url + "/healthz").json()["log"]["size"] <= last:
            time.sleep(0.1)
        w = Watcher(server.url + "/log/", log_signer.verifier, tmp_path / "mon")
        assert w.run_once().new_alerts == []
        one = httpx.post(server.url + "/v1/oversight/feeds/replay",
                         json={"feeds": [f["feed"] for f in served]},
                         headers={"Authorization": f"Bearer {olga}"}).json()["feeds"]  # fmt: skip
        report, alerts = w.replay(server.url, olga, sample=100)
        nodes = httpx.get(server.url + "/healthz").json()["node"]
    finally:
        server.stop()
        drop_cluster_traces(dd.database_url(), redis_url, nats_url)
    assert nodes.startswith("w.")  # one of the two nodes, named after its process
    assert all(r["available"] for r in one), [r for r in one if not r["available"]]
    assert (report.replayed, report.unavailable, report.mismatched) == (30, 0, 0), report
    assert alerts == []
