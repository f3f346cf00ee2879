"""Two servers of one clean room following each other over the bus — in one
process and on NATS JetStream (the same test on both), with PostgreSQL or
SQLite and Redis: videos registered on one reach the other's catalogue,
events stored on one are counted by the other, a retraining asked of a
follower is done by the trainer, and a user deleted on the follower leaves
the trainer's model, whose new version every server then serves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cleanroom.api.app import create_app
from tests.support import NOW, USER, Api, drop_cluster_traces, make_dir, seed


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


@pytest.fixture(params=["memory", "nats"])
def bus_url(request: pytest.FixtureRequest, unique_prefix: str) -> str:
    if request.param == "memory":
        return f"memory://{unique_prefix}"
    return request.getfixturevalue("nats_url")


def test_two_servers_follow_each_other(
    tmp_path: Path, db_url: str, log_signer, redis_url: str, bus_url: str
) -> None:
    dd = make_dir(tmp_path, db_url, log_signer, state_url=redis_url, bus_url=bus_url)
    with TestClient(create_app(str(dd.path), node="one")) as one:
        a = Api(one, one.app.state.room)
        rec_a = one.app.state.recommender
        assert rec_a.ready.wait(30), rec_a.error
        seed(a)
        for u in range(3, 9):
            assert a.call("PUT", f"/v1/users/u{u}", "app", json=USER).status_code == 201
        with TestClient(create_app(str(dd.path), node="two")) as two:
            b = a.through(two)
            rec_b = two.app.state.recommender
            try:
                assert rec_b.ready.wait(30), rec_b.error
                assert rec_a.cluster.trainer and not rec_b.cluster.trainer
                videos = [{"id": f"w{i}", "creator": f"c{i % 3}"} for i in range(8)]
                assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).is_success
                wait_for(lambda: rec_b.engine.catalog.get("w7") is not None)
                likes = [
                    {"id": f"l{u}-{i}", "user": f"u{u}", "video": f"w{i}", "kind": "like",
                     "ts_ms": NOW + i}
                    for u in range(3, 9) for i in range(8) if (u + i) % 2
                ]  # fmt: skip
                r = a.call("POST", "/v1/events", "app", json={"events": likes})
                assert r.status_code == 200, r.text
                slow_b = rec_b.engine.counters.slow
                wait_for(lambda: "*" in slow_b and slow_b["*"].value("w1", NOW) >= 3)
                assert slow_b["*"].value("w1", NOW) == rec_a.engine.counters.slow["*"].value(
                    "w1", NOW
                )
                # a retraining asked of the follower: the trainer trains, both serve it
                before = rec_a.engine.live_version
                assert rec_b.retrain() is None  # asked of the trainer, not done here
                wait_for(lambda: rec_a.engine.live_version != before)
                wait_for(lambda: rec_b.engine.live_version == rec_a.engine.live_version)
                trained = [e for e in a.ledger() if e["type"] == "model.trained"]
                assert len({e["model_version"] for e in trained}) == len(trained)
                # a user deleted on the follower leaves the trainer's model
                assert "u3" in rec_a.engine.model.data.users
                assert b.call("GET", "/v1/feed", "ulla").status_code == 200
                version = rec_a.engine.live_version
                assert a.call("GET", "/v1/feed", "ulla").status_code == 200  # (token remembered)
                r = b.call("DELETE", "/v1/me", "ulla")
                assert r.status_code == 200, r.text
                # the other server refuses the user's token as soon as it hears of it
                wait_for(lambda: a.call("GET", "/v1/feed", "ulla").status_code == 401, 5)
                wait_for(lambda: "u1" in rec_a.engine.model.gone)
                wait_for(lambda: rec_a.engine.live_version != version)
                wait_for(lambda: rec_b.engine.live_version == rec_a.engine.live_version)
                updated = [e for e in a.ledger() if e["type"] == "model.updated"]
                assert updated and updated[-1]["model_version"] == rec_a.engine.live_version
                assert rec_a.engine.states.get("u1") is None
            finally:
                rec_a.engine.states.clear()
    drop_cluster_traces(db_url, redis_url, bus_url if bus_url.startswith("nats") else None)
