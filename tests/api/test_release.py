"""Releases over HTTP through the ASGI app (SQLite and PostgreSQL): the
parent's submission shows its change to reviewers and cannot be deployed;
reviews signed with the reviewers' own keys approve a legitimate change,
which deploys and reloads through the deploy check at once (policy and
model); rollback; the model registry; the gate decides every step; bad input
is problem+json and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.foryou import RankingConfig
from cleanroom.ledger.note import generate_signer
from cleanroom.room.bootstrap import sign_review
from tests.support import Api, running_api


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        for name in ("operator-reviewer", "oversight-reviewer"):
            a.tokens[name] = a.room.principals.issue_token(name)
        yield a


def _review(api: Api, digest: str, name: str, org: str, decision: str = "approve"):
    art = api.room.releases.get(digest)
    env = sign_review(
        api.room.data_dir.read_key(f"reviewer-{name}"), art, org=org, decision=decision
    )
    return api.call("POST", f"/v1/releases/{digest}/reviews", name, json=env)


def test_a_hidden_boost_is_shown_refused_and_a_reviewed_change_deploys(api: Api) -> None:
    shipped = RankingConfig.shipped().raw
    rerank = {**shipped.get("rerank", {}), "creator_boosts": {"c1": 5.0}}
    sneaky = {
        "kind": "model",
        "name": "tuning",
        "manifest": {"config": {**shipped, "rerank": rerank}},
    }
    r = api.call("POST", "/v1/releases", "pete", json=sneaky)
    assert r.status_code == 201, r.text
    digest = r.json()["digest"]
    assert r.json()["org"] == "parent" and not r.json()["verdict"]["approved"]
    shown = api.call("GET", f"/v1/releases/{digest}", "olga").json()
    assert any("creator_boosts" in line and "c1" in line for line in shown["diff"])
    # the parent can neither read the queue, review nor deploy
    assert api.call("GET", "/v1/releases", "pete").status_code == 403
    assert api.call("POST", f"/v1/releases/{digest}/deploy", "pete").status_code == 403
    refused = api.call("POST", f"/v1/releases/{digest}/deploy", "alice")
    assert refused.status_code == 403 and "not approved" in refused.json()["detail"]
    assert api.ledger()[-1]["type"] == "release.refused"
    # a legitimate change: reviewed by both, deployed, live at once
    legit = {
        "kind": "model",
        "name": "explore",
        "manifest": {"config": {**shipped, "exploration": 0.05}},
    }
    good = api.call("POST", "/v1/releases", "alice", json=legit).json()["digest"]
    assert _review(api, good, "operator-reviewer", "operator").json()["approved"] is False
    assert _review(api, good, "oversight-reviewer", "oversight").json()["approved"] is True
    r = api.call("POST", f"/v1/releases/{good}/deploy", "alice")
    assert r.status_code == 200, r.text
    assert r.json()["loaded"]["digest"] == good
    assert api.call("GET", "/v1/feed/config").json()["digest"] == good
    page = api.call("GET", "/v1/releases?kind=model", "olga").json()
    listed = {a["digest"]: a for a in page["items"]}
    assert listed[good]["live"] and not listed[digest]["live"]
    back = api.call("POST", "/v1/releases/rollback", "alice", json={"kind": "model"})
    assert back.status_code == 200 and back.json()["artifact"] != good
    assert api.call("GET", "/v1/feed/config").json()["digest"] == RankingConfig.shipped().digest()
    assert api.call("GET", "/v1/releases/models", "olga").status_code == 200


def _submit_policy_with(api: Api, rule: str, org: str, resource: str, name: str):
    """Submit the live policy set plus one permit of ``org`` reading ``resource``."""
    files = dict(api.room.gate.policy.files)
    cedar = next(n for n in files if n.endswith(".cedar"))
    files[cedar] += (
        f'\n@id("{rule}")\n'
        f'permit (principal, action == Action::"read", resource is {resource})\n'
        f'when {{ principal.org == "{org}" }};\n'
    )
    body = {"kind": "policy", "name": name, "manifest": {"files": files}}
    return api.call("POST", "/v1/releases", "alice", json=body)


def test_a_policy_release_reloads_the_gate(api: Api) -> None:
    r = _submit_policy_with(api, "oversight-reads-decisions", "oversight", "Decisions", "p2")
    assert r.status_code == 201, r.text
    digest = r.json()["digest"]
    assert any(line.startswith("+@id(\"oversight-reads-decisions\")") for line in
               api.call("GET", f"/v1/releases/{digest}", "alice").json()["diff"])  # fmt: skip
    diff = api.call("GET", f"/v1/releases/{digest}", "alice").json()["diff"]
    assert "decisions that change on the fixed request set: 0" in diff  # already allowed
    _review(api, digest, "operator-reviewer", "operator")
    _review(api, digest, "oversight-reviewer", "oversight")
    assert api.call("POST", f"/v1/releases/{digest}/deploy", "sam").status_code == 200
    assert api.room.gate.policy.version == digest
    assert "oversight-reads-decisions" in api.room.gate.policy.rule_ids.values()


def test_bad_release_input_is_problem_json_and_changes_nothing(api: Api) -> None:
    before = api.room.log.store.sequenced_size()
    unknown = "sha256:" + "0" * 64
    shipped = RankingConfig.shipped().raw
    digest = api.call("POST", "/v1/releases", "alice", json={
        "kind": "model", "name": "x", "manifest": {"config": {**shipped, "exploration": 0.1}}
    }).json()["digest"]  # fmt: skip
    after_submit = api.room.log.store.sequenced_size()
    assert after_submit == before + 2  # the gate's decision and the submission
    stranger = generate_signer("stranger")
    art = api.room.releases.get(digest)
    cases = [
        ("POST", "/v1/releases", "alice", {"kind": "firmware", "name": "x", "manifest": {}}, 422),
        ("POST", "/v1/releases", "alice", {"kind": "model", "name": "x", "manifest": {}}, 400),
        ("POST", "/v1/releases", "alice",
         {"kind": "model", "name": "x", "manifest": {"config": {"weights": {}}}}, 422),
        ("POST", "/v1/releases", "alice",
         {"kind": "policy", "name": "x", "manifest": {"files": {"a.cedar": "permit("}}}, 422),
        ("GET", f"/v1/releases/{unknown}", "alice", None, 404),
        ("POST", f"/v1/releases/{unknown}/deploy", "alice", None, 403),
        ("POST", f"/v1/releases/{digest}/reviews", "operator-reviewer", {"payload": "x"}, 400),
        ("POST", f"/v1/releases/{digest}/reviews", "operator-reviewer",
         sign_review(stranger, art, org="operator"), 403),
        ("POST", f"/v1/releases/{unknown}/reviews", "operator-reviewer",
         sign_review(stranger, art, org="operator"), 404),
        ("POST", "/v1/releases/rollback", "alice", {"kind": "source"}, 422),
    ]  # fmt: skip
    for method, path, who, body, status in cases:
        r = api.call(method, path, who, json=body)
        assert r.status_code == status, (path, body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
    kinds = [e["type"] for e in api.ledger()[after_submit:]]
    assert "release.review" not in kinds and "release.deployed" not in kinds
    assert api.room.releases.reviews(digest) == []


def test_a_policy_diff_lists_the_decisions_that_change(api: Api) -> None:
    r = _submit_policy_with(api, "platform-reads-models", "platform", "Models", "wider")
    digest = r.json()["digest"]
    diff = api.call("GET", f"/v1/releases/{digest}", "olga").json()["diff"]
    # every purpose but "recommendation" (only the recommender may use it)
    from cleanroom.gate.gate import PURPOSES

    changed = len([p for p in PURPOSES if p != "recommendation"])
    assert changed == 14 and f"decisions that change on the fixed request set: {changed}" in diff
    assert any(
        line.startswith("  deny -> allow: platform/service/ingest read Models (purposes: (none),")
        for line in diff
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # engine work, not storage
def test_model_releases_are_evaluated_on_the_fixed_set_on_record(api: Api) -> None:
    from cleanroom.release.verify import replay

    live = api.room.releases.live("model").artifact
    r = api.call("POST", f"/v1/releases/{live}/evaluate", "olga")
    assert r.status_code == 201, r.text
    m = r.json()
    assert (m["dataset"], m["split"]) == ("kuairec-small", "valid")
    assert 0.03 < m["recall@20"] < 0.5 and 0.0 < m["ndcg@20"] < m["recall@20"]
    shown = api.call("GET", f"/v1/releases/{live}", "alice").json()["evaluation"]
    assert shown["recall@20"] == m["recall@20"] and api.ledger()[shown["ledger_index"]]["type"] == (
        "release.evaluated"
    )
    view = replay(list(enumerate(api.ledger())))
    assert view.evaluations[live]["ndcg@20"] == m["ndcg@20"]
    assert api.call("POST", f"/v1/releases/{live}/evaluate", "pete").status_code == 403
    policy = api.room.releases.live("policy").artifact
    bad = api.call("POST", f"/v1/releases/{policy}/evaluate", "olga")
    assert bad.status_code == 400 and "only a model" in bad.json()["detail"]
