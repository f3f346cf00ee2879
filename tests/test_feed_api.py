"""GET /v1/feed end to end over real HTTP through the ASGI app, on SQLite and
PostgreSQL: training through the gate, feeds committed to the ledger, online
learning from ingested events, the feed setting, deletion from the model, and
clear errors for bad requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.foryou.feed import items_digest

from .test_gate_api import USER, Api, running_api

NOW = int(time.time() * 1000)


def _events(users: int, videos: int, per_user: int, offset: int = 0) -> list[dict]:
    out = []
    for u in range(users):
        for k in range(per_user):
            v = (u * 7 + k * 3) % videos
            liked = (u + k) % 3 == 0
            out.append(
                {
                    "id": f"e{offset}-{u}-{k}",
                    "user": f"u{u}",
                    "video": f"v{v}",
                    "kind": "view" if liked else "skip",
                    "ts_ms": NOW - 3_600_000 + k * 1000,
                    "watch_ms": 30_000 if liked else 800,
                }
            )
    return out


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        rec = a.app.state.recommender
        assert rec.ready.wait(30), rec.error
        for u in range(30):
            assert a.call("PUT", f"/v1/users/u{u}", "app", json=USER).status_code in (200, 201)
        videos = [
            {
                "id": f"v{i}",
                "creator": f"c{i % 9}",
                "topics": [f"t{i % 4}"],
                "created_ms": NOW - 86_400_000 * (1 + i % 5),
            }
            for i in range(60)
        ]
        assert a.call("POST", "/v1/videos", "app", json={"videos": videos}).status_code == 200
        r = a.call("POST", "/v1/events", "app", json={"events": _events(30, 60, 20)})
        assert r.status_code == 200, r.text
        yield a


def _retrain(a: Api) -> None:
    rec = a.app.state.recommender
    rec.retrain().join(60)
    assert rec.trained and rec.trained["records"] == 600


def test_feed_is_served_explained_and_committed(api: Api) -> None:
    _retrain(api)
    r = api.call("GET", "/v1/feed?limit=10", "ulla")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert len(doc["items"]) == 10 and doc["next_cursor"]
    for item in doc["items"]:
        assert item["sources"] and item["why"] and item["why"][0]["text"]
    entry = api.ledger()[doc["ledger_index"]]
    assert entry["type"] == "feed.served" and entry["feed"] == doc["feed"]
    assert entry["items_digest"] == items_digest(i["video"] for i in doc["items"])
    assert entry["model_version"] == doc["model_version"]
    assert "u1" not in str(entry)  # digests only
    # the next page continues the same feed
    nxt = api.call("GET", f"/v1/feed?limit=10&cursor={doc['next_cursor']}", "ulla").json()
    assert nxt["feed"] == doc["feed"] and nxt["offset"] == 10
    assert not {i["video"] for i in nxt["items"]} & {i["video"] for i in doc["items"]}
    # the model's lineage: trained on a recorded, allowed read of the jurisdiction's events
    ledger = api.ledger()
    trained = [e for e in ledger if e["type"] == "model.trained"][-1]
    read = ledger[trained["read_decision"]]
    assert read["principal"] == "recommender" and read["purpose"] == "recommendation"
    assert read["decision"] == "allow" and read["subjects"] == "all"
    assert trained["jurisdiction"] == "US" and trained["records"] == 600


def test_an_event_changes_the_next_feed_at_once(api: Api) -> None:
    first = api.call("GET", "/v1/feed?limit=5&seed=a", "ulla").json()
    top = first["items"][0]["video"]
    ev = {
        "id": "ni-1",
        "user": "u1",
        "video": top,
        "kind": "not_interested",
        "ts_ms": NOW,
        "watch_ms": 0,
    }
    t = time.perf_counter()
    assert api.call("POST", "/v1/events", "app", json={"events": [ev]}).status_code == 200
    second = api.call("GET", "/v1/feed?limit=5&seed=a", "ulla").json()
    assert time.perf_counter() - t < 1.0
    assert top not in [i["video"] for i in second["items"]]
    assert second["state_digest"] != first["state_digest"]


def test_non_personalised_setting(api: Api) -> None:
    r = api.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "popular"})
    assert r.status_code == 200
    mine = api.call("GET", "/v1/feed?limit=20", "ulla").json()
    assert mine["mode"] == "popular"
    # the platform's popular feed for anyone in the region is the same list
    rec = api.app.state.recommender
    other = rec.engine.feed("u7", region=rec.region, limit=20, mode="popular")
    assert [i["video"] for i in mine["items"]] == [i.video for i in other.items]
    bad = api.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "chronological"})
    assert bad.status_code == 422


def test_bad_requests_get_problems(api: Api) -> None:
    for q in ("limit=0", "limit=101", "limit=x", "mode=chronological"):
        r = api.call("GET", f"/v1/feed?{q}", "ulla")
        assert r.status_code == 422, (q, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = api.call("GET", "/v1/feed?cursor=nonsense", "ulla")
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    r = api.call("GET", "/v1/feed?cursor=" + "0" * 32 + ".10", "ulla")
    assert r.status_code == 410
    r = api.call("GET", "/v1/feed", "pete")  # not a user
    assert r.status_code == 403
    assert api.call("GET", "/v1/feed").status_code == 401
    # public: what the feed optimises
    cfg = api.call("GET", "/v1/feed/config").json()
    assert cfg["weights"]["long_view"] > 0 and cfg["digest"].startswith("sha256:")


def test_cold_start_user_gets_a_feed(api: Api) -> None:
    from cleanroom.gate import Principal

    room = api.room
    room.principals.add(Principal("newbie", "user", "users", "user", "US", 0, subject="u999"))
    token = room.principals.issue_token("newbie")
    r = api.client.get("/v1/feed?limit=5", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and len(r.json()["items"]) == 5


def test_deleted_user_leaves_the_model(api: Api) -> None:
    _retrain(api)
    rec = api.app.state.recommender
    before = rec.engine.model.version
    assert api.call("GET", "/v1/feed?limit=5", "ulla").status_code == 200
    r = api.call("DELETE", "/v1/me", "ulla")
    assert r.status_code == 200, r.text
    deadline = time.time() + 20
    while time.time() < deadline:
        updated = [e for e in api.ledger() if e["type"] == "model.updated"]
        if updated:
            break
        time.sleep(0.1)
    assert updated and updated[-1]["from_version"] == before
    assert updated[-1]["model_version"] == rec.engine.model.version != before
    assert "u1" in rec.engine.model.gone and rec.engine.states.get("u1") is None


def test_the_registry_answers_which_model_served_when(api: Api) -> None:
    """From the ledger alone (and the builder's public key): the model versions
    in the order they went live, their approved configuration and lineage,
    which one was live at a time T, and which one served a given feed."""
    from cleanroom.release.models import live_at, served_feed, timeline
    from cleanroom.room.provenance import builder_key

    _retrain(api)
    feed = api.call("GET", "/v1/feed?limit=5", "ulla").json()
    served_at = int(time.time() * 1000)
    api.call("DELETE", "/v1/me", "ulla")
    deadline = time.time() + 20
    while time.time() < deadline and not any(e["type"] == "model.updated" for e in api.ledger()):
        time.sleep(0.1)
    entries = list(enumerate(api.ledger()))
    models = timeline(entries, builder=builder_key(api.room).verifier)
    trained, updated = models[-2], models[-1]
    assert trained["how"] == "trained" and updated["how"] == "updated (deletion)"
    assert updated["from_version"] == trained["version"] != updated["version"]
    assert trained["live_until_ms"] == updated["live_from_ms"]
    assert trained["config_release"]["approved_by"] == ["operator-reviewer", "oversight-reviewer"]
    assert trained["lineage"]["jurisdictions"] == {"US": 600}
    assert trained["lineage"]["provenance_verified"] and trained["feeds_served"] >= 1
    assert trained["lineage"]["source"].startswith("sha256:")
    assert trained["config_release"]["deployed_ms"]  # when the configuration went live
    # which model served the feed, and which was live when it was served
    (commitment,) = served_feed(entries, feed["feed"])
    assert commitment["model_version"] == feed["model_version"] == trained["version"]
    assert live_at(models, served_at)["version"] == trained["version"]
    assert live_at(models, updated["live_from_ms"])["version"] == updated["version"]
    assert live_at(models, 0) is None


def test_a_model_release_shows_how_feeds_would_change(api: Api) -> None:
    """Reviewers of a configuration that boosts one creator see that creator's
    share of the feeds jump, on the live model and users, before approving."""
    from cleanroom.foryou import RankingConfig

    _retrain(api)
    shipped = RankingConfig.shipped().raw
    rerank = {**shipped.get("rerank", {}), "creator_boosts": {"c3": 2.0}}
    body = {
        "kind": "model",
        "name": "tuning",
        "manifest": {"config": {**shipped, "rerank": rerank}},
    }
    digest = api.call("POST", "/v1/releases", "pete", json=body).json()["digest"]
    r = api.call("GET", f"/v1/releases/{digest}?evaluate=true", "olga")
    assert r.status_code == 200, r.text
    change = r.json()["feed_change"]
    assert change["users"] == 30 and change["feeds_changed"] > 0
    assert change["boosted_creators"] == ["c3"]
    assert change["boosted_share_after"] > 2 * change["boosted_share_before"]
    assert change["mean_overlap"] < 1.0
    # the live configuration is unchanged by looking
    assert api.call("GET", "/v1/feed/config").json()["digest"] == RankingConfig.shipped().digest()
    policy = api.room.releases.artifacts("policy")[0].digest
    bad = api.call("GET", f"/v1/releases/{policy}?evaluate=true", "olga")
    assert bad.status_code == 400 and "only a model" in bad.json()["detail"]
