"""The oversight monitor over HTTP: no alert on a clean run; each injected
violation (hidden boost, undeclared export, export without screening,
unapproved release, overdue deletion, forked log) raises exactly its alert,
with the entries and their inclusion proofs as evidence."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.ledger import proofs
from cleanroom.ledger.checkpoint import parse_checkpoint
from cleanroom.ledger.hashing import leaf_hash, unb64
from cleanroom.oversight import Watcher
from tests.support import OPS, Api, export, running_api

URL = "http://testserver/log/"


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        a.room.principals.add(OPS)
        a.tokens["ops"] = a.room.principals.issue_token("ops")
        for i in range(12):
            body = {"jurisdiction": "US", "profile": {"handle": f"@u{i}"}}
            assert a.call("PUT", f"/v1/users/u{i}", "app", json=body).status_code == 201
        events = [
            {
                "id": f"e{i}",
                "user": f"u{i % 12}",
                "video": "v1",
                "kind": "view",
                "ts_ms": 1000 + i,
                "watch_ms": 3000,
            }
            for i in range(24)
        ]
        assert a.call("POST", "/v1/videos", "app", json={"videos": [{"id": "v1", "creator": "c"}]})
        assert a.call("POST", "/v1/events", "app", json={"events": events}).status_code == 200
        yield a


def watcher(api: Api, tmp_path: Path, log_signer, name: str = "oversight") -> Watcher:
    """The monitor, deciding every access entry again under its released policy."""
    return Watcher(
        URL,
        log_signer.verifier,
        tmp_path / name,
        client=api.client,
        api_url="http://testserver",
        token=api.tokens["olga"],
    )


def publish(api: Api) -> None:
    api.room.log.integrate()


def clean_activity(api: Api) -> None:
    """What a working clean room does: screen, export for research, serve feeds,
    execute a deletion order."""
    r = export(
        api, "rita", {"recipient": "Example University Lab", "country": "US", "kind": "aggregates"}
    )
    assert r.status_code == 200, r.text
    refused = export(
        api, "rita", {"recipient": "ZTE Corporation", "country": "CN", "kind": "aggregates"}
    )
    assert refused.status_code == 403
    order = api.call(
        "POST",
        "/v1/oversight/deletion-orders?purpose=legal",
        "olga",
        json={"scope": "user", "target": "u3", "reason": "court order", "deadline_days": 1},
    )
    assert order.status_code in (200, 201, 202), order.text
    api.app.state.order_runner.wait_idle()


def test_a_clean_run_raises_no_alert(api: Api, tmp_path: Path, log_signer) -> None:
    clean_activity(api)
    publish(api)
    report = watcher(api, tmp_path, log_signer).run_once()
    assert report.entries_checked > 20
    assert report.new_alerts == [], [a.message for a in report.new_alerts]
    rules = json.loads((tmp_path / "oversight" / "rules.json").read_text())
    assert rules["flows"] == {"US|aggregate|allow": 1, "CN|aggregate|refuse": 1}
    types = {e["type"] for e in api.ledger()}
    assert {
        "access",
        "egress.flow",
        "screen.screening",
        "deletion.order",
        "deletion.done",
        "release.deployed",
    } <= types


def _violation(api: Api, tmp_path: Path, log_signer, inject, now_ms: int | None = None):
    w = watcher(api, tmp_path, log_signer)
    clean_activity(api)
    publish(api)
    assert w.run_once().new_alerts == []
    injected = inject(api)
    publish(api)
    report = w.run_once(now_ms)
    assert w.run_once(now_ms).new_alerts == []  # raised once, not again
    return report.new_alerts, injected


def _proven(alert, log_signer, api: Api) -> None:
    """The evidence entries are in the signed tree (inclusion proofs check)."""
    cp = parse_checkpoint(api.room.log.store.latest().note.split("\n\n")[0] + "\n")
    for i, ev in alert.evidence["proven"].items():
        leaf = leaf_hash(ev["entry"].encode())
        proof = [unb64(h) for h in ev["inclusion_proof"]]
        if ev["tree_size"] == cp.size:
            proofs.verify_inclusion(leaf, int(i), cp.size, proof, cp.root)


def test_hidden_boost_is_an_unapproved_model(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:  # a feed ranked by a configuration nobody approved
        return a.room.log.append(
            {
                "type": "feed.served",
                "v": 1,
                "feed": "f1",
                "mode": "personalized",
                "offset": 0,
                "count": 10,
                "items_digest": "sha256:00",
                "list_digest": "sha256:00",
                "model_version": "m1",
                "ranking_config": "sha256:" + "ab" * 32,
                "state_digest": "sha256:00",
                "pool_version": "p1",
                "seed": "s",
                "time_bucket_ms": 0,
            }
        )

    alerts, index = _violation(api, tmp_path, log_signer, inject)
    assert [(a.kind, a.index) for a in alerts] == [("unapproved-model", index)]
    _proven(alerts[0], log_signer, api)


def test_undeclared_export(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:  # data left through a path other than the egress gate
        d = a.room.gate.decide(
            a.room.principals.get("rita"),
            "export",
            "Aggregates",
            purpose="research",
            all_subjects=True,
        )
        assert d.allowed
        return d.entry

    later = int(time.time() * 1000) + 120_000
    alerts, index = _violation(api, tmp_path, log_signer, inject, now_ms=later)
    assert [(a.kind, a.index) for a in alerts] == [("undeclared-export", index)]


def test_export_without_screening(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:
        d = a.room.gate.decide(
            a.room.principals.get("rita"),
            "export",
            "Aggregates",
            purpose="research",
            all_subjects=True,
        )
        return a.room.log.append(
            {
                "type": "egress.flow",
                "v": 1,
                "recipient": "Shell Co",
                "country": "US",
                "kind": "aggregates",
                "data_class": "aggregate",
                "decision": "allow",
                "screening_entry": None,
                "access_entry": d.entry,
            }
        )

    alerts, index = _violation(api, tmp_path, log_signer, inject)
    assert [(a.kind, a.index) for a in alerts] == [("export-without-screening", index)]


def test_unapproved_release_is_caught(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:  # a deployment written around the registry's check
        a.room.log.append(
            {
                "type": "release.submitted",
                "v": 1,
                "artifact": "sha256:" + "cd" * 32,
                "kind": "model",
                "name": "x",
                "submitted_by": "pete",
                "org": "parent",
                "at_ms": 1,
            }
        )
        return a.room.log.append(
            {
                "type": "release.deployed",
                "v": 1,
                "artifact": "sha256:" + "cd" * 32,
                "kind": "model",
                "by": "ops",
                "rollback": False,
                "at_ms": 2,
            }
        )

    alerts, index = _violation(api, tmp_path, log_signer, inject)
    assert [(a.kind, a.index) for a in alerts] == [("unapproved-release", index)]
    assert "0 counted approvals" in alerts[0].message


def test_overdue_deletion_order(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:  # an order recorded, never executed
        return a.room.log.append(
            {
                "type": "deletion.order",
                "v": 1,
                "time_ms": 1,
                "order": "ord-x",
                "decision": 1,
                "issued_by": "olga",
                "scope": "user",
                "target": "sha256:00",
                "deadline_ms": int(time.time() * 1000) + 1000,
            }
        )

    alerts, index = _violation(api, tmp_path, log_signer, inject)
    assert alerts == []  # not due yet
    w = watcher(api, tmp_path, log_signer)
    late = w.run_once(now_ms=int(time.time() * 1000) + 10_000).new_alerts
    assert [(a.kind, a.index) for a in late] == [("deletion-overdue", index)]


def test_a_forked_log_is_an_alert(tmp_path: Path, db_url: str, log_signer) -> None:
    """Two logs under the same key that disagree: the monitor that verified one
    raises a fork alert when shown the other."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the fork needs a second database; one SQLite file each")
    with running_api(tmp_path / "a", db_url, log_signer) as a:
        publish(a)
        w = Watcher(URL, log_signer.verifier, tmp_path / "mon", client=a.client)
        assert w.run_once().new_alerts == []
    with running_api(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}", log_signer) as b:
        b.room.log.append({"type": "test.other", "v": 1})
        publish(b)
        w = Watcher(URL, log_signer.verifier, tmp_path / "mon", client=b.client)
        alerts = w.run_once().new_alerts
    assert [a.kind for a in alerts] == ["fork"]


def test_a_decision_the_policy_would_not_make(api: Api, tmp_path: Path, log_signer) -> None:
    def inject(a: Api) -> int:  # an insider writes an "allow" the policy never gave
        real = [e for e in a.ledger() if e["type"] == "access"][-1]
        forged = {
            **real,
            "principal": "pete",
            "kind": "person",
            "org": "parent",
            "role": "engineer",
            "principal_jurisdiction": "US",
            "clearance": 9,
            "self_access": False,
            "action": "read",
            "resource": "Profile",
            "data_class": "protected",
            "purpose": "support",
            "decision": "allow",
            "rules": ["staff-with-role-and-purpose"],
            "subjects": [],
        }
        return a.room.log.append(forged)

    alerts, index = _violation(api, tmp_path, log_signer, inject)
    assert [(a.kind, a.index) for a in alerts] == [("decision-contradicts-policy", index)]
    assert "would deny" in alerts[0].message
