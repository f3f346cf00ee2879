"""The recommender's user states inside the clean room, on SQLite and
PostgreSQL: each is the fold of the user's events in the vault's order (the
same state whether learnt online or folded again), the feed setting survives
a restart, and two servers on one database and one Redis see one state."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cleanroom.api.app import create_app
from tests.support import Api, make_dir, running_api, seed


def _events(user: str, start: int, n: int, kind: str = "view") -> list[dict]:
    return [
        {
            "id": f"{user}-{start + k}",
            "user": user,
            "video": f"v{(start + k) % 3}",
            "kind": kind,
            "ts_ms": 50_000 - 10 * (start + k),  # sent newest first: order is the vault's
            "watch_ms": 20_000 if k % 2 else 1_000,
        }
        for k in range(n)
    ]


def test_a_users_state_is_the_fold_of_their_stored_events(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    with running_api(tmp_path, db_url, log_signer) as a:
        seed(a)
        rec = a.app.state.recommender
        assert rec.ready.wait(30), rec.error
        for start in (100, 200):
            r = a.call("POST", "/v1/events", "app", json={"events": _events("u1", start, 5)})
            assert r.status_code == 200 and r.json()["stored"] == 5, r.text
        online = rec.engine.state_of("u1", rec.region)
        assert online is not None and online.through == 15  # 5 seeded, 10 sent
        assert rec.engine.states.drop("u1")
        again = rec.engine.state_of("u1", rec.region)
        assert again is not None and again.to_dict() == online.to_dict()


def test_the_feed_setting_is_kept_across_a_restart(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    dd = make_dir(tmp_path, db_url, log_signer)
    with TestClient(create_app(str(dd.path))) as client:
        a = Api(client, client.app.state.room)
        seed(a)
        r = a.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "popular"})
        assert r.status_code == 200, r.text
        tokens = a.tokens
    with TestClient(create_app(str(dd.path))) as client:
        rec = client.app.state.recommender
        assert rec.ready.wait(30), rec.error
        assert rec.engine.state_of("u1", rec.region).mode == "popular"
        headers = {"Authorization": f"Bearer {tokens['ulla']}"}
        assert client.get("/v1/feed", headers=headers).json()["mode"] == "popular"


def test_two_servers_on_one_redis_see_one_state(
    tmp_path: Path, db_url: str, log_signer, redis_url: str
) -> None:
    dd = make_dir(tmp_path, db_url, log_signer, state_url=redis_url)
    with TestClient(create_app(str(dd.path))) as one:
        a = Api(one, one.app.state.room)
        seed(a)
        with TestClient(create_app(str(dd.path))) as two:
            b = a.through(two)
            rec_a, rec_b = one.app.state.recommender, two.app.state.recommender
            assert rec_a.ready.wait(30) and rec_b.ready.wait(30)
            try:
                r = a.call("POST", "/v1/events", "app", json={"events": _events("u2", 300, 4)})
                assert r.status_code == 200, r.text
                r = b.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "popular"})
                assert r.status_code == 200, r.text
                on_a = rec_a.engine.state_of("u2", rec_a.region)
                on_b = rec_b.engine.state_of("u2", rec_b.region)
                assert on_a.through == on_b.through == 9
                assert on_a.to_dict() == on_b.to_dict()
                assert rec_a.engine.state_of("u1", rec_a.region).mode == "popular"
            finally:
                rec_a.engine.states.clear()

