"""GET /v1/feed end to end over real HTTP through the ASGI app, on SQLite and
PostgreSQL: training through the gate, feeds committed to the ledger, online
learning from ingested events, the feed setting, deletion from the model, and
clear errors for bad requests."""

from __future__ import annotations

import time

from cleanroom.foryou.feed import items_digest
from tests.support import NOW, Api, retrain


def test_feed_is_served_explained_and_committed(trained_api: Api) -> None:
    retrain(trained_api)
    r = trained_api.call("GET", "/v1/feed?limit=10", "ulla")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert len(doc["items"]) == 10 and doc["next_cursor"]
    for item in doc["items"]:
        assert item["sources"] and item["why"] and item["why"][0]["text"]
    entry = trained_api.ledger()[doc["ledger_index"]]
    assert entry["type"] == "feed.served" and entry["feed"] == doc["feed"]
    assert entry["items_digest"] == items_digest(i["video"] for i in doc["items"])
    assert entry["model_version"] == doc["model_version"]
    assert "u1" not in str(entry)  # digests only
    # the next page continues the same feed
    nxt = trained_api.call("GET", f"/v1/feed?limit=10&cursor={doc['next_cursor']}", "ulla").json()
    assert nxt["feed"] == doc["feed"] and nxt["offset"] == 10
    assert not {i["video"] for i in nxt["items"]} & {i["video"] for i in doc["items"]}
    # the model's lineage: trained on a recorded, allowed read of the jurisdiction's events
    ledger = trained_api.ledger()
    trained = [e for e in ledger if e["type"] == "model.trained"][-1]
    read = ledger[trained["read_decision"]]
    assert read["principal"] == "recommender" and read["purpose"] == "recommendation"
    assert read["decision"] == "allow" and read["subjects"] == "all"
    assert trained["jurisdiction"] == "US" and trained["records"] == 600


def test_an_event_changes_the_next_feed_at_once(trained_api: Api) -> None:
    first = trained_api.call("GET", "/v1/feed?limit=5&seed=a", "ulla").json()
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
    assert trained_api.call("POST", "/v1/events", "app", json={"events": [ev]}).status_code == 200
    second = trained_api.call("GET", "/v1/feed?limit=5&seed=a", "ulla").json()
    assert time.perf_counter() - t < 1.0
    assert top not in [i["video"] for i in second["items"]]
    assert second["state_digest"] != first["state_digest"]


def test_non_personalised_setting(trained_api: Api) -> None:
    r = trained_api.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "popular"})
    assert r.status_code == 200
    mine = trained_api.call("GET", "/v1/feed?limit=20", "ulla").json()
    assert mine["mode"] == "popular"
    # the platform's popular feed for anyone in the region is the same list
    rec = trained_api.app.state.recommender
    other = rec.engine.feed("u7", region=rec.region, limit=20, mode="popular")
    assert [i["video"] for i in mine["items"]] == [i.video for i in other.items]
    bad = trained_api.call("PUT", "/v1/me/feed-settings", "ulla", json={"mode": "chronological"})
    assert bad.status_code == 422


def test_bad_requests_get_problems(trained_api: Api) -> None:
    for q in ("limit=0", "limit=101", "limit=x", "mode=chronological"):
        r = trained_api.call("GET", f"/v1/feed?{q}", "ulla")
        assert r.status_code == 422, (q, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = trained_api.call("GET", "/v1/feed?cursor=nonsense", "ulla")
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    r = trained_api.call("GET", "/v1/feed?cursor=" + "0" * 32 + ".10", "ulla")
    assert r.status_code == 410
    r = trained_api.call("GET", "/v1/feed", "pete")  # not a user
    assert r.status_code == 403
    assert trained_api.call("GET", "/v1/feed").status_code == 401
    # public: what the feed optimises
    cfg = trained_api.call("GET", "/v1/feed/config").json()
    assert cfg["weights"]["long_view"] > 0 and cfg["digest"].startswith("sha256:")


def test_cold_start_user_gets_a_feed(trained_api: Api) -> None:
    from cleanroom.gate import Principal

    room = trained_api.room
    room.principals.add(Principal("newbie", "user", "users", "user", "US", 0, subject="u999"))
    token = room.principals.issue_token("newbie")
    r = trained_api.client.get("/v1/feed?limit=5", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and len(r.json()["items"]) == 5


def test_deleted_user_leaves_the_model(trained_api: Api) -> None:
    retrain(trained_api)
    rec = trained_api.app.state.recommender
    before = rec.engine.model.version
    assert trained_api.call("GET", "/v1/feed?limit=5", "ulla").status_code == 200
    r = trained_api.call("DELETE", "/v1/me", "ulla")
    assert r.status_code == 200, r.text
    deadline = time.time() + 20
    while time.time() < deadline:
        updated = [e for e in trained_api.ledger() if e["type"] == "model.updated"]
        if updated:
            break
        time.sleep(0.1)
    assert updated and updated[-1]["from_version"] == before
    assert updated[-1]["model_version"] == rec.engine.model.version != before
    assert "u1" in rec.engine.model.gone and rec.engine.states.get("u1") is None


def test_the_registry_answers_which_model_served_when(trained_api: Api) -> None:
    """From the ledger alone (and the builder's public key): the model versions
    in the order they went live, their approved configuration and lineage,
    which one was live at a time T, and which one served a given feed."""
    from cleanroom.release.models import live_at, served_feed, timeline
    from cleanroom.room.provenance import builder_key

    retrain(trained_api)
    feed = trained_api.call("GET", "/v1/feed?limit=5", "ulla").json()
    served_at = int(time.time() * 1000)
    trained_api.call("DELETE", "/v1/me", "ulla")
    deadline = time.time() + 20
    while time.time() < deadline and not any(
        e["type"] == "model.updated" for e in trained_api.ledger()
    ):
        time.sleep(0.1)
    entries = list(enumerate(trained_api.ledger()))
    models = timeline(entries, builder=builder_key(trained_api.room).verifier)
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


def test_a_model_release_shows_how_feeds_would_change(trained_api: Api) -> None:
    """Reviewers of a configuration that boosts one creator see that creator's
    share of the feeds jump, on the live model and users, before approving."""
    from cleanroom.foryou import RankingConfig

    retrain(trained_api)
    shipped = RankingConfig.shipped().raw
    rerank = {**shipped.get("rerank", {}), "creator_boosts": {"c3": 2.0}}
    body = {
        "kind": "model",
        "name": "tuning",
        "manifest": {"config": {**shipped, "rerank": rerank}},
    }
    digest = trained_api.call("POST", "/v1/releases", "pete", json=body).json()["digest"]
    r = trained_api.call("GET", f"/v1/releases/{digest}?evaluate=true", "olga")
    assert r.status_code == 200, r.text
    change = r.json()["feed_change"]
    assert change["users"] == 30 and change["feeds_changed"] > 0
    assert change["boosted_creators"] == ["c3"]
    assert change["boosted_share_after"] > 2 * change["boosted_share_before"]
    assert change["mean_overlap"] < 1.0
    # the live configuration is unchanged by looking
    assert (
        trained_api.call("GET", "/v1/feed/config").json()["digest"]
        == RankingConfig.shipped().digest()
    )
    policy = trained_api.room.releases.artifacts("policy")[0].digest
    bad = trained_api.call("GET", f"/v1/releases/{policy}?evaluate=true", "olga")
    assert bad.status_code == 400 and "only a model" in bad.json()["detail"]
