"""Findings 1 and 2 of the adversarial review: forged decisions and an
operator that approves alone. Each test plays an adversary with the operator's
powers — a ledger token, a database it can write to, its own reviewers — and
proves the attack is refused by the clean room or flagged by the oversight
body's monitor, which checks every signature and registration itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cleanroom.gate import Principal
from cleanroom.ledger.authority import sign_root_statement
from cleanroom.ledger.entries import RESERVED_NAMESPACES
from cleanroom.ledger.note import generate_signer
from cleanroom.oversight import Watcher
from cleanroom.room.bootstrap import sign_review
from tests.support import Api, running_api

URL = "http://testserver/log/"
ART = "sha256:" + "cd" * 32


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        a.room.principals.add(Principal("ops", "service", "operator", "ledger", "US", 1))
        a.tokens["ops"] = a.room.principals.issue_token("ops")
        yield a


def run(w: Watcher, api: Api) -> list:
    """The monitor's new alerts once the log published what was appended."""
    api.room.log.integrate()
    return w.run_once().new_alerts


def watch(api: Api, tmp_path: Path, log_signer) -> Watcher:
    """The monitor, pinning the oversight body's root key itself."""
    api.room.log.integrate()
    return Watcher(URL, log_signer.verifier, tmp_path / "oversight", client=api.client,
                   oversight_vkey=api.room.config.oversight_vkey)  # fmt: skip


FORGERIES = [
    {"type": "release.review", "artifact": ART, "reviewer": "oversight-reviewer",
     "org": "oversight", "decision": "approve"},
    {"type": "release.deployed", "artifact": ART, "kind": "model", "by": "ops"},
    {"type": "boost.approved", "boost": "boost-1", "by": "olga", "org": "oversight"},
    {"type": "deletion.done", "order": "o1", "time_ms": 1},
    {"type": "access", "principal": "olga", "decision": "allow"},
    {"type": "oversight.root", "vkey": "x"},
    {"type": "principal.oversight", "principal": "mallory", "action": "add"},
    {"type": "model.trained", "ranking_config": "x"},
    {"type": "feed.served", "feed": "f"},
    {"type": "egress.flow", "decision": "allow"},
    {"type": "screen.screening", "decision": "clear"},
]  # fmt: skip


@pytest.mark.parametrize("entry", FORGERIES, ids=[e["type"] for e in FORGERIES])
def test_the_append_api_refuses_reserved_entry_types(shared_api: Api, entry: dict) -> None:
    """An operator service with a ledger token writes its own entries, never
    the clean room's decisions: 403 problem+json naming the reserved type."""
    api = shared_api
    if "ops" not in api.tokens:
        api.room.principals.add(Principal("ops", "service", "operator", "ledger", "US", 1))
        api.tokens["ops"] = api.room.principals.issue_token("ops")
    before = api.room.log.store.sequenced_size()
    r = api.call("POST", "/v1/ledger/entries", "ops", json={**entry, "v": 1})
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert f"entry type {entry['type']!r} is reserved" in r.json()["detail"]
    assert api.room.log.store.sequenced_size() == before
    ok = api.call("POST", "/v1/ledger/entries", "ops", json={"type": "ops.note", "v": 1})
    assert ok.status_code == 201
    assert set(RESERVED_NAMESPACES) >= {e["type"].split(".")[0] for e in FORGERIES}


def test_the_monitor_checks_every_review_signature_itself(
    api: Api, tmp_path: Path, log_signer
) -> None:
    """Entries appended around the API (the operator writes to its own
    database): a review in the oversight reviewer's name signed with another
    key, and the deployment it would allow. Taken at face value before, now a
    forged review and an unapproved release."""
    w = watch(api, tmp_path, log_signer)
    assert w.run_once().new_alerts == []
    log = api.room.log
    log.append({"type": "release.submitted", "v": 1, "artifact": ART, "kind": "model",
                "name": "x", "submitted_by": "ops", "org": "operator", "at_ms": 1})  # fmt: skip
    art = api.room.releases  # a real signed review by the operator's reviewer ...
    op_key = api.room.data_dir.read_key("reviewer-operator-reviewer")
    real = sign_review(op_key, _artifact(ART), org="operator")
    forged = sign_review(generate_signer("oversight-reviewer"), _artifact(ART), org="oversight")
    reviews = [("operator-reviewer", "operator", real), ("oversight-reviewer", "oversight", forged)]
    idx = [log.append({"type": "release.review", "v": 1, "artifact": ART, "reviewer": n,
                       "org": o, "decision": "approve", "envelope": env, "at_ms": 2})
           for n, o, env in reviews]  # fmt: skip
    deployed = log.append({"type": "release.deployed", "v": 1, "artifact": ART, "kind": "model",
                           "by": "ops", "rollback": False, "at_ms": 3})  # fmt: skip
    alerts = run(w, api)
    assert [(a.kind, a.index) for a in alerts] == [
        ("forged-review", idx[1]),
        ("unapproved-release", deployed),
    ]
    assert "does not count" in alerts[0].message and "1 counted approvals" in alerts[1].message
    assert art.live("model").artifact != ART


def test_the_operator_cannot_approve_a_model_alone(api: Api, tmp_path: Path, log_signer) -> None:
    """Two operator reviewers, each with a valid registered key: the API keeps
    the artifact pending and refuses to deploy it; entries written around the
    registry are an unapproved release for the monitor."""
    w = watch(api, tmp_path, log_signer)
    second = generate_signer("alice")
    api.room.releases.add_reviewer("alice", "operator", second.verifier.vkey, added_by="admin")
    body = {"kind": "model", "name": "tweak", "manifest": {"config": _tweaked()}}
    r = api.call("POST", "/v1/releases", "sam", json=body)
    assert r.status_code == 201, r.text
    digest = r.json()["digest"]
    art = api.room.releases.get(digest)
    for key in (api.room.data_dir.read_key("reviewer-operator-reviewer"), second):
        who = key.name
        r = api.call("POST", f"/v1/releases/{digest}/reviews", who if who in api.tokens else
                     "alice", json=sign_review(key, art, org="operator"))  # fmt: skip
        assert r.status_code in (200, 201), r.text
    assert r.json()["missing"] == "1 more from the oversight body"
    r = api.call("POST", f"/v1/releases/{digest}/deploy", "alice")
    assert r.status_code == 403 and "oversight body" in r.json()["detail"]
    # written around the registry, it is an alert
    log = api.room.log
    deployed = log.append(
        {
            "type": "release.deployed",
            "v": 1,
            "artifact": digest,
            "kind": "model",
            "by": "alice",
            "rollback": False,
            "at_ms": 3,
        }
    )
    alerts = [a for a in run(w, api) if a.kind == "unapproved-release"]
    assert [(a.index, "no approval from the oversight body" in a.message) for a in alerts] == [
        (deployed, True)
    ]


def test_the_operator_cannot_mint_the_oversight_body(api: Api, tmp_path: Path, log_signer) -> None:
    """An operator administrator registers a principal of org oversight and a
    reviewer of org oversight: refused without the root's statement; written
    around the clean room, flagged — and the forged principal's token is not
    accepted, its access entries are impersonation."""
    w = watch(api, tmp_path, log_signer)
    mallory = Principal("mallory", "person", "oversight", "regulator", "US", 5)
    with pytest.raises(Exception, match="root key"):
        api.room.add_principal(mallory)
    fake_root = generate_signer("oversight-root")
    forged_statement = sign_root_statement(
        fake_root, origin=api.room.config.origin, action="add", subject="principal",
        name="mallory", kind="person", role="regulator", jurisdiction="US",
    )  # fmt: skip
    with pytest.raises(Exception, match="does not hold"):
        api.room.add_principal(mallory, forged_statement)
    key = generate_signer("mallory")
    with pytest.raises(Exception, match="only by a statement"):
        api.room.releases.add_reviewer("mallory", "oversight", key.verifier.vkey, added_by="x")
    # straight into the database: the token does not authenticate
    from cleanroom.gate.principals import principals_t

    with api.room.db.write() as conn:
        conn.execute(principals_t.insert().values(
            name="mallory", kind="person", org="oversight", role="regulator", jurisdiction="US",
            clearance=5, subject=None, disabled=False, created_at=datetime.now(UTC),
        ))  # fmt: skip
    token = api.room.principals.issue_token("mallory")
    r = api.client.get("/v1/oversight/topics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "root key" in r.json()["detail"]
    # entries written around it all: the root changed, a reviewer and a principal
    # without statements, a decision in the oversight body's name
    log = api.room.log
    forged = [
        log.append({"type": "oversight.root", "v": 1, "vkey": fake_root.verifier.vkey}),
        log.append({"type": "release.reviewer", "v": 1, "reviewer": "mallory",
                    "org": "oversight", "vkey": key.verifier.vkey,
                    "statement": sign_root_statement(
                        fake_root, origin=api.room.config.origin, action="add",
                        subject="reviewer", name="mallory", vkey=key.verifier.vkey)}),
        log.append({"type": "principal.oversight", "v": 1, "action": "add",
                    "principal": "mallory", "kind": "person", "role": "regulator",
                    "jurisdiction": "US", "statement": forged_statement}),
    ]  # fmt: skip
    d = api.room.gate.decide(api.room.principals.get("mallory"), "read", "Aggregates",
                             purpose="oversight", all_subjects=True)  # fmt: skip
    kinds = [(a.kind, a.index) for a in run(w, api) if a.index in [*forged, d.entry]]
    assert kinds == [
        ("oversight-root-changed", forged[0]),
        ("forged-oversight-identity", forged[1]),
        ("forged-oversight-identity", forged[2]),
        ("forged-oversight-identity", d.entry),
    ]


def _artifact(digest: str):
    from cleanroom.release.registry import Artifact

    return Artifact(digest, "model", "x", "ops", "operator", 0, {})


def _tweaked() -> dict:
    from cleanroom.foryou import RankingConfig

    cfg = RankingConfig.shipped().raw
    return {**cfg, "exploration": 0.05}


def test_an_oversight_principal_leaves_only_by_the_root(
    api: Api, tmp_path: Path, log_signer
) -> None:
    """The operator cannot silence the oversight body either: removing one of
    its principals needs the root's statement, and is on the record."""
    from cleanroom.room.bootstrap import dev_oversight_root

    w = watch(api, tmp_path, log_signer)
    with pytest.raises(Exception, match="removed only by a statement"):
        api.room.remove_principal("olga")
    assert api.call("GET", "/v1/oversight/deletion-orders", "olga").status_code == 200
    root = dev_oversight_root(api.room, api.room.data_dir)
    statement = sign_root_statement(root, origin=api.room.config.origin, action="remove",
                                    subject="principal", name="olga")  # fmt: skip
    assert api.room.remove_principal("olga", statement) == 1
    assert api.call("GET", "/v1/oversight/deletion-orders", "olga").status_code == 401
    assert [a.kind for a in run(w, api)] == []  # the removal verifies
    assert "olga" not in w._engine().overseers
