"""Findings 3 and 5: who reaches what. Oversight endpoints are the oversight
body's alone, whatever purpose a researcher or the operator names; after any
deletion path the erased user's tokens stop working and no principal row
links anything to the erased id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cleanroom.gate import Principal
from cleanroom.gate.principals import principals_t
from tests.support import Api, running_api, seed

OVERSIGHT_READS = ["/v1/oversight/exposure", "/v1/oversight/topics"]


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        seed(a)
        yield a


@pytest.mark.parametrize("path", OVERSIGHT_READS)
@pytest.mark.parametrize("who", ["rita", "alice", "app", "pete", "ulla"])
@pytest.mark.parametrize("purpose", ["research", "oversight", "support", "legal"])
def test_only_the_oversight_body_reads_oversight_data(
    shared_api: Api, path: str, who: str, purpose: str
) -> None:
    r = shared_api.call("GET", path, who, params={"purpose": purpose})
    assert r.status_code == 403, (who, purpose, r.text)
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", OVERSIGHT_READS)
def test_the_oversight_body_does(shared_api: Api, path: str) -> None:
    r = shared_api.call("GET", path, "olga")
    assert r.status_code in (200, 503), r.text  # topics: 503 until a model trained


def _no_link(api: Api, user: str) -> None:
    with api.room.db.read() as conn:
        linked = conn.execute(
            select(principals_t.c.name).where(principals_t.c.subject == user)
        ).all()
    assert linked == []


def test_a_deletion_order_ends_the_users_tokens(api: Api) -> None:
    api.room.principals.add(Principal("uma", "user", "users", "user", "US", 0, subject="u2"))
    token = api.room.principals.issue_token("uma")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/me/data", headers=headers).status_code == 200
    body = {"scope": "user", "target": "u2", "reason": "court order", "deadline_days": 7}
    r = api.call("POST", "/v1/oversight/deletion-orders", "olga", json=body)
    assert r.status_code == 201 and r.json()["status"] == "done", r.text
    r = api.client.get("/v1/me/data", headers=headers)
    assert r.status_code == 401, r.text
    assert api.client.get("/v1/feed", headers=headers).status_code == 401
    _no_link(api, "u2")


def test_deleting_ones_account_leaves_no_principal_linked(api: Api) -> None:
    assert api.call("DELETE", "/v1/me", "ulla").status_code == 200
    assert api.call("GET", "/v1/me/data", "ulla").status_code == 401
    _no_link(api, "u1")
