"""The recommender's user states inside the clean room, on SQLite and
PostgreSQL: each is the fold of the user's events in the vault's order (the
same state whether learnt online or folded again), the feed setting survives
a restart, and two servers on one database and one Redis see one state."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from cleanroom.api.app import create_app
from cleanroom.foryou.feed import items_digest
from tests.support import NOW, Api, make_dir, running_api, seed


def _events(user: str, start: int, n: int, kind: str = "view") -> list[dict]:
    return [
        {
            "id": f"{user}-{start + k}",
            "user": user,
            "video": f"v{(start + k) % 3}",
            "kind": kind,
            "ts_ms": NOW - 10 * (start + k),  # sent newest first: order is the vault's
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


def test_the_feed_setting_is_kept_across_a_restart(tmp_path: Path, db_url: str, log_signer) -> None:
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


def test_the_exposure_report_outlives_a_restart(tmp_path: Path, db_url: str, log_signer) -> None:
    """The embedded default keeps what feeds showed in the database: the
    oversight body's exposure report after a restart still counts the pages
    served before it (and a crash would lose a few seconds, not the history)."""
    dd = make_dir(tmp_path, db_url, log_signer)

    def served_and_reported(tokens: dict[str, str] | None) -> tuple[dict[str, str], int, int]:
        with TestClient(create_app(str(dd.path))) as client:
            if tokens is None:
                a = Api(client, client.app.state.room)
                seed(a)
                videos = [{"id": f"w{i}", "creator": f"c{i % 4}"} for i in range(12)]
                assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).is_success
                tokens = a.tokens
            rec = client.app.state.recommender
            assert rec.ready.wait(30), rec.error

            def h(name: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens[name]}"}

            page = client.get("/v1/feed?limit=2", headers=h("ulla"))
            assert page.status_code == 200, page.text
            rows = client.get("/v1/oversight/exposure?limit=500", headers=h("olga"))
            assert rows.status_code == 200, rows.text
            total = sum(r["impressions"] for r in rows.json()["items"])
            return tokens, len(page.json()["items"]), total

    tokens, first, reported = served_and_reported(None)
    assert first == 2 and reported == 2
    _, second, reported = served_and_reported(tokens)
    assert reported == first + second == 4


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


def test_any_server_pages_and_replays_a_feed_another_served(
    tmp_path: Path, db_url: str, log_signer, redis_url: str
) -> None:
    dd = make_dir(tmp_path, db_url, log_signer, state_url=redis_url)
    with TestClient(create_app(str(dd.path))) as one:
        a = Api(one, one.app.state.room)
        seed(a)
        # (registered before the second server starts: its catalogue is read at start)
        videos = [{"id": f"w{i}", "creator": f"c{i % 4}"} for i in range(12)]
        assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).is_success
        liked = [
            {**e, "video": f"w{k}", "user": "u2"}
            for k, e in enumerate(_events("u2", 400, 12, "like"))
        ]
        assert a.call("POST", "/v1/events", "app", json={"events": liked}).status_code == 200
        with TestClient(create_app(str(dd.path))) as two:
            b = a.through(two)
            rec_a, rec_b = one.app.state.recommender, two.app.state.recommender
            assert rec_a.ready.wait(30) and rec_b.ready.wait(30)
            try:
                assert rec_a.engine.live_version == rec_b.engine.live_version
                first = a.call("GET", "/v1/feed?limit=1", "ulla").json()
                assert first["next_cursor"], first
                feed = first["feed"]
                second = b.call("GET", f"/v1/feed?limit=5&cursor={first['next_cursor']}", "ulla")
                assert second.status_code == 200, second.text
                served = rec_a.engine.record(feed).videos
                shown = [i["video"] for i in first["items"] + second.json()["items"]]
                assert shown == served[: len(shown)] and len(shown) == 6
                # the same page, explanations and all, as the server that served it
                same = a.call("GET", f"/v1/feed?limit=5&cursor={first['next_cursor']}", "ulla")
                assert same.json()["items"] == second.json()["items"]
                assert all(i["sources"] for i in second.json()["items"])
                r = b.call("POST", f"/v1/oversight/feeds/{feed}/replay", "olga")
                assert r.status_code == 200 and r.json()["match"], r.text
                r = b.call("POST", "/v1/oversight/feeds/replay", "olga", json={"feeds": [feed]})
                assert r.json()["feeds"][0]["replayed_digest"] == items_digest(served)
                # the exposure report, from either server, counts both servers' pages
                # (each writes its counts within a second of serving, and when asked)
                for c in (a, b):
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline:
                        rows = c.call("GET", "/v1/oversight/exposure?limit=500", "olga").json()
                        total = sum(r["impressions"] for r in rows["items"])
                        if total == 1 + 5 + 5:
                            break
                        time.sleep(0.2)
                    assert total == 11
                # another user's cursor is not theirs to page
                other = b.call("GET", f"/v1/feed?cursor={first['next_cursor']}", "app")
                assert other.status_code in (403, 410), other.text
            finally:
                rec_a.engine.states.clear()
