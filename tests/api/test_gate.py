"""The clean room's protected-data API end to end, over real HTTP through the ASGI
app, on SQLite and PostgreSQL: no route around the gate, every decision on the
ledger, masking, export, deletion, bad input writing nothing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from cleanroom.api.app import create_app
from cleanroom.gate.principals import tokens_t
from cleanroom.room import CleanRoom
from cleanroom.room.config import ResidencyConfig, SiteConfig
from cleanroom.vault import ResidencyError
from cleanroom.vault.model import EVENT_KINDS
from tests.support import USER, Api, access_entries, make_dir

PUBLIC_PREFIXES = ("/log/", "/healthz", "/openapi.json", "/docs", "/redoc", "/witness/")


def _routes(app) -> list[tuple[str, str]]:
    """Every operation of the app (from its OpenAPI document), public ones aside."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        if path.startswith(PUBLIC_PREFIXES):
            continue
        out.extend((m.upper(), path) for m in ops)
    return out


def _fill(path: str) -> str:
    return path.replace("{user_id}", "u1").replace("{index}", "0").replace("{path:path}", "x")


def test_every_non_public_route_needs_a_token_and_the_gate(api: Api) -> None:
    """Walk every route: without a token 401; with a parent engineer's token
    nothing protected is returned and nothing is written."""
    routes = _routes(api.app)
    assert len(routes) >= 10
    before = api.room.vault.counts()
    for method, path in routes:
        body = {"events": [], "videos": []} if method == "POST" else None
        r = api.call(method, _fill(path), json=body)
        public_read = method == "GET" and path in (
            "/v1/ledger/entries",
            "/v1/ledger/entries/{index}",
        )
        if public_read or path.startswith("/v1/ledger/proofs"):
            assert r.status_code != 401  # the ledger is public: no personal data in it
            continue
        if path in ("/v1/feed/config", "/v1/feed/model"):
            assert r.status_code == 200  # what the feed optimises is published
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")
        for purpose in ("", "support", "legal", "recommendation"):
            r = api.call(method, _fill(path) + f"?purpose={purpose}", "pete", json=body)
            assert r.status_code in (403, 422), (method, path, r.status_code, r.text)
            assert "profile" not in r.text and 'events":[{' not in r.text
    assert api.room.vault.counts() == before


def test_public_endpoints_stay_public(api: Api) -> None:
    assert api.call("GET", "/healthz").status_code == 200
    assert api.call("GET", "/openapi.json").status_code == 200
    assert api.call("GET", "/log/checkpoint").status_code == 200


def test_staff_see_masked_fields_only_with_role_and_purpose(api: Api) -> None:
    r = api.call("GET", "/v1/users/u1?purpose=support", "alice")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["profile"]["phone"].endswith("34") and "555" not in doc["profile"]["phone"]
    assert doc["profile"]["ip_address"] == "203.0.113.0/24"
    assert doc["profile"]["email"] == "one@example.com"
    assert sorted(doc["masked"]) == ["ip_address", "phone"]
    # the role must match the purpose, and a purpose is required
    assert api.call("GET", "/v1/users/u1?purpose=safety", "alice").status_code == 403
    assert api.call("GET", "/v1/users/u1", "alice").status_code == 403
    r = api.call("GET", "/v1/users/u1?purpose=marketing", "alice")
    assert r.status_code == 400 and "unknown purpose" in r.json()["detail"]
    r = api.call("GET", "/v1/users/u1/events?purpose=safety", "sam")
    assert r.status_code == 200
    assert all(e["context"] == {"masked": True} for e in r.json()["items"])
    assert len(r.json()["items"]) == 5 and r.json()["next_cursor"] is None
    # a page at a time: every event once, newest first
    seen, cursor = [], None
    while True:
        params = {"purpose": "safety", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/v1/users/u1/events", "sam", params=params).json()
        seen += [e["id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [e["id"] for e in r.json()["items"]]
    # staff of another jurisdiction never reach protected data
    r = api.call("GET", "/v1/users/u1?purpose=support", "eve-eu")
    assert r.status_code == 403 and "protected-stays-in-jurisdiction" in r.json()["detail"]


def test_parent_is_denied_and_denial_is_on_the_ledger(api: Api) -> None:
    r = api.call("GET", "/v1/users/u1?purpose=support", "pete")
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "parent-never-protected" in r.json()["detail"]
    last = access_entries(api)[-1]
    assert last["decision"] == "deny" and last["principal"] == "pete"
    assert last["subjects"][0].startswith("c1:") and "u1" not in json.dumps(last)
    r = api.call("GET", "/v1/users/u1/events?purpose=recommendation", "pia")
    assert r.status_code == 403


def test_roles_of_the_other_organisations(api: Api) -> None:
    # researchers: aggregates only, differentially private (noisy counts, groups
    # whose noisy count is under min_group withheld)
    r = api.call("GET", "/v1/aggregates/events?purpose=research&min_group=10", "rita")
    assert r.status_code == 200 and set(r.json()["counts"]) <= set(EVENT_KINDS)
    assert r.json()["privacy"]["epsilon"] == 0.5
    assert api.call("GET", "/v1/users/u1?purpose=research", "rita").status_code == 403
    # oversight: metadata, never personal fields
    assert api.call("GET", "/v1/users/u1?purpose=legal", "olga").status_code == 403
    assert api.call("GET", "/v1/oversight/deletion-orders", "olga").status_code == 200
    assert api.call("GET", "/v1/oversight/deletion-orders", "alice").status_code == 403
    # the recommender reads events in bulk, for recommendation only
    room = api.room
    rec = room.system("recommender")
    grant = room.gate.require(rec, "read", "Events", purpose="recommendation", all_subjects=True)
    rows = [row for part in room.vault.iter_events(grant) for row in part]
    assert len(rows) == 10 and {r[2] for r in rows} == {"view"}
    assert not room.gate.decide(rec, "read", "Events", purpose="safety", all_subjects=True).allowed
    assert not room.gate.decide(rec, "read", "Profile", purpose="recommendation").allowed


def test_user_exports_and_deletes_own_data_only(api: Api) -> None:
    r = api.call("GET", "/v1/me/data", "ulla")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["format"] == "cleanroom-export/v1"
    assert doc["user"]["profile"]["phone"] == "+1 555 0100 1234"  # their own, unmasked
    assert len(doc["events"]) == 5 and all(e["user"] == "u1" for e in doc["events"])
    # another user's record is not theirs
    assert api.call("GET", "/v1/users/u2", "ulla").status_code == 403
    assert api.call("GET", "/v1/me/data", "alice").status_code == 403
    r = api.call("DELETE", "/v1/me", "ulla")
    assert r.status_code == 200, r.text
    receipt = r.json()
    item = receipt["deleted"][0]
    assert item["key_destroyed"] and item["events"] == 5 and item["profile"] == 1
    entry = api.ledger()[receipt["receipt"]]
    assert entry["type"] == "deletion" and entry["deleted"][0]["key_id"] == item["key_id"]
    assert api.room.vault.counts()["users"] == 1
    # the token died with the account
    assert api.call("GET", "/v1/me/data", "ulla").status_code == 401


def test_count_of_decisions_equals_access_entries(api: Api) -> None:
    gate = api.room.gate
    start, entries0 = gate.decisions, len(access_entries(api))
    calls = [
        ("GET", "/v1/users/u1?purpose=support", "alice"),
        ("GET", "/v1/users/u1?purpose=support", "alice"),  # a cache hit is recorded too
        ("GET", "/v1/users/u1?purpose=support", "pete"),
        ("GET", "/v1/users/u2/events?purpose=safety", "sam"),
        ("GET", "/v1/me/data", "ulla"),
        ("GET", "/v1/oversight/deletion-orders", "olga"),
        ("GET", "/v1/aggregates/events?purpose=research", "rita"),
        ("GET", "/v1/aggregates/events?purpose=research", "pete"),
    ]
    for m, p, who in calls:
        api.call(m, p, who)
    made = gate.decisions - start
    assert made == len(calls)
    assert len(access_entries(api)) - entries0 == made
    kinds = [e["decision"] for e in access_entries(api)[-len(calls) :]]
    assert kinds.count("deny") == 2


def test_expired_and_revoked_tokens_are_rejected(api: Api) -> None:
    principals = api.room.principals
    principals.auth_ttl = 0.5  # how long a verified token is remembered (300 s by default)
    token = principals.issue_token("alice")
    tid = token.split("_")[1]
    ok = api.client.get(
        "/v1/users/u1?purpose=support", headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status_code == 200
    with api.room.db.write() as conn:
        conn.execute(
            update(tokens_t)
            .where(tokens_t.c.id == tid)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    time.sleep(principals.auth_ttl + 0.1)
    r = api.client.get("/v1/users/u1?purpose=support", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    principals.revoke("alice")
    r = api.call("GET", "/v1/users/u1?purpose=support", "alice")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    forged = api.tokens["sam"][:-4] + "AAAA"
    r = api.client.get("/v1/users/u1", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    r = api.client.get("/v1/users/u1", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and "malformed" in r.json()["detail"]


BAD_EVENTS = [
    ({"events": [{"id": "x1", "user": "u1", "video": "v0", "kind": "teleport", "ts_ms": 1}]}, 422),
    ({"events": [{"id": "x1", "user": "u1", "video": "v0", "kind": "view", "ts_ms": -5}]}, 422),
    ({"events": [{"id": "x1", "user": "nobody", "video": "v0", "kind": "view", "ts_ms": 1}]}, 422),
    ({"events": [{"id": "x1", "user": "u1", "video": "v404", "kind": "view", "ts_ms": 1}]}, 422),
    ({"events": [{"id": "e1", "user": "u1", "video": "v0", "kind": "view", "ts_ms": 1}]}, 409),
    ({"events": "no"}, 422),
    ({"events": []}, 422),
    (
        {
            "events": [
                {"id": "x1", "user": "u1", "video": "v0", "kind": "view", "ts_ms": 1, "extra": 1}
            ]
        },
        422,
    ),
    (
        {
            "events": [
                {"id": f"y{i}", "user": "u1", "video": "v0", "kind": "view", "ts_ms": 1}
                for i in range(10_001)
            ]
        },
        413,
    ),
]


@pytest.mark.parametrize(("body", "status"), BAD_EVENTS)
def test_bad_event_batches_write_nothing(shared_api: Api, body: dict, status: int) -> None:
    api = shared_api
    before = api.room.vault.counts()
    good = {"id": "ok-1", "user": "u2", "video": "v1", "kind": "like", "ts_ms": 5}
    if isinstance(body["events"], list) and body["events"] and status != 413:
        body = {"events": [good, *body["events"]]}  # a good event in the batch is not stored
    r = api.call("POST", "/v1/events", "app", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]
    assert api.room.vault.counts() == before


def test_bad_requests_get_problems_and_write_nothing(api: Api) -> None:
    before = api.room.vault.counts()
    r = api.call(
        "POST",
        "/v1/events",
        "app",
        content=b"{not json",
        headers={"content-type": "application/json", **api.h("app")},
    )
    assert r.status_code == 422
    cases = [
        ("PUT", "/v1/users/u9", {**USER, "jurisdiction": "DE"}, 422, "home jurisdiction"),
        ("PUT", "/v1/users/u9", {**USER, "profile": {"shoe_size": 9}}, 422, "shoe_size"),
        ("PUT", "/v1/users/bad id", USER, 422, "user id"),
        ("POST", "/v1/videos", {"videos": [{"id": "v9"}]}, 422, "creator"),
    ]
    for method, path, body, status, words in cases:
        r = api.call(method, path, "app", json=body)
        assert r.status_code == status, (path, r.text)
        assert words in r.json()["detail"]
    assert api.room.vault.counts() == before
    assert api.call("GET", "/v1/users/u404?purpose=support", "alice").status_code == 404


def test_oversight_orders_one_users_deletion(api: Api) -> None:
    body = {"scope": "user", "target": "u2", "reason": "court order 12/2026", "deadline_days": 7}
    assert api.call("POST", "/v1/oversight/deletion-orders", "alice", json=body).status_code == 403
    r = api.call("POST", "/v1/oversight/deletion-orders", "olga", json=body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "done" and order["deleted_users"] == 1
    assert "target" not in order
    entries = api.ledger()
    assert entries[order["entry"]]["type"] == "deletion.order"
    assert entries[order["entry"]]["target"][0].startswith("c1:")
    receipts = [e for e in entries if e["type"] == "deletion" and e["order"] == order["id"]]
    assert len(receipts) == 1 and receipts[0]["deleted"][0]["events"] == 5
    r = api.call("POST", "/v1/oversight/deletion-orders", "olga", json={**body, "scope": "planet"})
    assert r.status_code == 422


def test_server_refuses_a_site_the_residency_policy_does_not_allow(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    dd = make_dir(
        tmp_path,
        db_url,
        log_signer,
        site=SiteConfig("eu-1", "DE", "trusted-operator"),
        residency=ResidencyConfig(["US"], ["trusted-operator"]),
    )
    with pytest.raises(ResidencyError, match="DE"):
        create_app(str(dd.path))
    config = dd.load()
    config.site = SiteConfig("us-1", "US", "parent-cloud")
    dd.save(config)
    with pytest.raises(ResidencyError, match="parent-cloud"):
        CleanRoom.open(dd)
