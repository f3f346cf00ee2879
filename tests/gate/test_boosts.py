"""The boost registry over HTTP: a boost applies only once declared and
approved by the oversight body; approved boosts are labelled in feeds and
explanations, named in the feed's ledger entry and counted in the exposure
aggregates; the monitor matches every applied boost with its approval and
raises an alert for one nobody approved."""

from __future__ import annotations

import time
from pathlib import Path

from cleanroom.foryou.pool import Boost
from cleanroom.ledger.authority import entry_digest, sign_boost_review, sign_root_statement
from cleanroom.ledger.note import generate_signer
from cleanroom.oversight import Watcher
from tests.support import OPS, Api, retrain, serve_feeds

URL = "http://testserver/log/"


def _ops(a: Api) -> None:
    a.room.principals.add(OPS)
    a.tokens["ops"] = a.room.principals.issue_token("ops")


def signed_approval(a: Api, boost: dict, reviewer: str = "oversight-reviewer") -> dict:
    """A reviewer's signed approval of a boost's declaration (the data directory
    keeps the first reviewers' keys)."""
    assert a.room.data_dir is not None
    key = a.room.data_dir.read_key(f"reviewer-{reviewer}")
    declared = a.ledger()[boost["declared_entry"]]
    assert entry_digest(declared) == boost["declared_digest"]
    return sign_boost_review(key, boost=boost["id"], declared=declared, decision="approve")


def _body(video: str, **over) -> dict:
    now = int(time.time() * 1000)
    return {
        "video": video,
        "factor": 5.0,
        "reason": "public health campaign",
        "label": "Promoted: public health",
        "start_ms": now - 1000,
        "end_ms": now + 3_600_000,
        "regions": ["US"],
        **over,
    }


def _coldest(a: Api) -> str:
    """A video u1's feed does not show unboosted, and u1 has not seen."""
    seen = {f"v{(7 + k * 3) % 60}" for k in range(20)}  # test_feed_api._events
    shown = {i["video"] for p in serve_feeds(a, range(3)) for i in p["items"]}
    return next(f"v{i}" for i in range(59, -1, -1) if f"v{i}" not in shown | seen)


def test_a_bad_boost_is_refused_and_records_nothing(trained_api: Api) -> None:
    retrain(trained_api)
    _ops(trained_api)
    video = _coldest(trained_api)
    size = len(trained_api.ledger())
    for bad, why in [
        (_body(video, end_ms=1), "window"),
        (_body(video, factor=50), "factor"),
        (_body(video, regions=["usa"]), "regions"),
        (_body(video, reason=""), "reason"),
    ]:
        r = trained_api.call("POST", "/v1/boosts", "ops", json=bad)
        assert r.status_code in (400, 422), (why, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert len(trained_api.ledger()) == size  # bad input records nothing
    r = trained_api.call("POST", "/v1/boosts", "ops", json=_body("no-such-video"))
    assert r.status_code == 400 and "catalogue" in r.json()["detail"]
    assert (
        trained_api.call("POST", "/v1/boosts", "pete", json=_body(video)).status_code == 403
    )  # parent


def test_a_boost_applies_only_once_approved(trained_api: Api, tmp_path: Path, log_signer) -> None:
    retrain(trained_api)
    _ops(trained_api)
    video = _coldest(trained_api)
    r = trained_api.call("POST", "/v1/boosts", "ops", json=_body(video))
    assert r.status_code == 201, r.text
    boost = r.json()
    assert boost["status"] == "declared" and boost["declared_by"] == "ops"
    # declared, not approved: nothing changes in feeds
    pages = serve_feeds(trained_api, range(10, 13))
    assert not any(i.get("boost") for p in pages for i in p["items"])
    # the operator cannot approve, the oversight body can
    rv = f"/v1/boosts/{boost['id']}/review"
    signed = signed_approval(trained_api, boost)
    assert trained_api.call("POST", rv, "ops", json={"decision": "approve"}).status_code == 403
    # an approval is a review signed by a reviewer of the oversight body
    r = trained_api.call("POST", rv, "olga", json={"decision": "approve"})
    assert r.status_code == 400 and "signed by a reviewer" in r.json()["detail"]
    by_operator = signed_approval(trained_api, boost, "operator-reviewer")
    r = trained_api.call("POST", rv, "olga", json={"decision": "approve", "envelope": by_operator})
    assert r.status_code == 400 and "oversight body" in r.json()["detail"]
    r = trained_api.call("POST", rv, "olga", json={"decision": "approve", "note": "campaign ok",
                                           "envelope": signed})  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    r = trained_api.call("POST", rv, "olga", json={"decision": "approve", "envelope": signed})
    assert r.status_code == 409

    pages = serve_feeds(trained_api, range(20, 23))
    for p in pages:
        top = p["items"][0]
        assert top["video"] == video, p["items"][:2]
        assert top["boost"] == {"id": boost["id"], "label": "Promoted: public health"}
        assert top["why"][0] == {"source": "boost", "text": "Promoted: public health"}
        assert "boosted" in top["sources"]
        entry = trained_api.ledger()[p["ledger_index"]]
        assert entry["boosts"] == [boost["id"]]
    rows = trained_api.call("GET", "/v1/oversight/exposure", "olga").json()["items"]
    assert sum(r["boosted_impressions"] for r in rows if r["video"] == video) == 3
    assert sum(r["boosted_impressions"] for r in rows if r["video"] != video) == 0
    listed = trained_api.call("GET", "/v1/boosts?status=approved", "olga").json()["items"]
    assert [b["id"] for b in listed] == [boost["id"]]
    assert trained_api.call("GET", "/v1/boosts?status=nonsense", "olga").status_code == 422

    # the monitor: declared and approved, applied in its window -> no alert
    trained_api.room.log.integrate()
    w = Watcher(URL, log_signer.verifier, tmp_path / "oversight", client=trained_api.client)
    assert w.run_once().new_alerts == []

    # revoked: no longer applied
    r = trained_api.call("POST", f"/v1/boosts/{boost['id']}/revoke", "ops", json={"reason": "done"})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert not any(
        i.get("boost") for p in serve_feeds(trained_api, range(30, 33)) for i in p["items"]
    )
    assert w.run_once().new_alerts == []


def test_a_boost_nobody_approved_is_an_alert(trained_api: Api, tmp_path: Path, log_signer) -> None:
    retrain(trained_api)
    _ops(trained_api)
    video = _coldest(trained_api)
    trained_api.room.log.integrate()
    w = Watcher(URL, log_signer.verifier, tmp_path / "oversight", client=trained_api.client)
    assert w.run_once().new_alerts == []
    # declared but never approved, applied by someone with access to the engine
    r = trained_api.call("POST", "/v1/boosts", "ops", json=_body(video))
    assert r.status_code == 201
    b = r.json()
    engine = trained_api.app.state.recommender.engine
    engine.declare_boost(
        Boost(b["id"], video, 5.0, "Promoted", "ops", "x", b["start_ms"], b["end_ms"])
    )
    trained_api.app.state.recommender._boosts_read = time.monotonic() + 3600  # no refresh
    pages = serve_feeds(trained_api, range(40, 42))
    alerts = w.run_once().new_alerts
    assert [a.kind for a in alerts] == ["undeclared-boost"] * 2
    assert {a.index for a in alerts} == {p["ledger_index"] for p in pages}
    assert "never approved" in alerts[0].message
    assert b["declared_entry"] in alerts[0].evidence["entries"]
    assert "proven" in alerts[0].evidence


def test_the_monitor_boost_rules_on_constructed_entries() -> None:
    """Each way a boost approval can fail to count, and a page served after
    its boost was revoked."""
    from cleanroom.oversight import RuleEngine

    root, olga, ops = (generate_signer(n) for n in ("root", "olga", "ops"))
    decls: dict[str, dict] = {}

    def reviewer(key, org: str) -> dict:
        statement = sign_root_statement(root, origin="o", action="add", subject="reviewer",
                                        name=key.name, vkey=key.verifier.vkey)  # fmt: skip
        return {"type": "release.reviewer", "reviewer": key.name, "org": org,
                "vkey": key.verifier.vkey, **({"statement": statement} if org == "oversight"
                                              else {})}  # fmt: skip

    def declared(bid: str, by: str = "ops") -> dict:
        decls[bid] = {"type": "boost.declared", "boost": bid, "video": "v1", "declared_by": by,
                      "org": "operator", "start_ms": 1_000_000, "end_ms": 9_000_000}  # fmt: skip
        return decls[bid]

    def approved(bid: str, key=olga, org: str = "oversight", decision: str = "approve") -> dict:
        env = sign_boost_review(key, boost=bid, decision=decision,
                                declared=decls.get(bid, {"boost": bid}))  # fmt: skip
        return {"type": "boost.approved", "boost": bid, "by": key.name, "org": org,
                "reviewer": key.name, "envelope": env}  # fmt: skip

    def page(bid: str, at: int) -> dict:
        return {"type": "feed.served", "offset": 1, "boosts": [bid], "time_bucket_ms": at,
                "ranking_config": "c"}  # fmt: skip

    e = RuleEngine({"deployed": {"policy": [], "model": ["c"]}}, oversight_vkey=root.verifier.vkey,
                   origin="o")  # fmt: skip
    entries = [
        reviewer(olga, "oversight"), reviewer(ops, "operator"),
        declared("b1"), approved("b1"),                        # fine
        approved("b0"),                                        # never declared
        declared("b2"), approved("b2", ops, "oversight"),      # not an oversight reviewer
        declared("b3", "olga"), approved("b3"),                # the declarer approves
        approved("b1"),                                        # not waiting for review
        declared("b4"), approved("b4", generate_signer("olga")),  # olga's name, not her key
        declared("b5"), approved("b5", decision="reject"),     # the signed review rejects
        page("b1", 2_000_000),                                 # fine
        page("b2", 2_000_000),                                 # never approved
        {"type": "boost.revoked", "boost": "b1", "time_ms": 3_000_000},
        page("b1", 5_000_000),                                 # after the revocation
        page("creator:c9", 5_000_000),                         # the configuration's own
    ]  # fmt: skip
    found = [(i, a.kind) for i, entry in enumerate(entries) for a in e.feed(i, entry)]
    assert found == [
        (4, "unapproved-boost"),
        (6, "unapproved-boost"),
        (8, "unapproved-boost"),
        (9, "unapproved-boost"),
        (11, "unapproved-boost"),
        (13, "unapproved-boost"),
        (15, "undeclared-boost"),
        (17, "undeclared-boost"),
    ]
    assert e.boosted_pages == {"b1": 2, "b2": 1}
    again = RuleEngine(e.state())  # the state survives a restart
    assert again.boosts == e.boosts


def test_the_oversight_body_approves_a_boost_from_the_command_line(
    trained_api: Api,
    tmp_path: Path,
    monkeypatch,
) -> None:
    """`cleanroom oversight boost-review` reads the declaration from the
    ledger, checks its digest, signs with the reviewer's key and sends it (the
    HTTP calls go through the ASGI app)."""
    import httpx
    from typer.testing import CliRunner

    from cleanroom.cli import app

    retrain(trained_api)
    _ops(trained_api)
    boost = trained_api.call("POST", "/v1/boosts", "ops", json=_body(_coldest(trained_api))).json()

    def through_app(method: str, url: str, **kw):
        kw.pop("timeout", None)
        return trained_api.client.request(method, url, **kw)

    monkeypatch.setattr(httpx, "request", through_app)
    key = trained_api.room.data_dir.keys / "reviewer-oversight-reviewer.key"
    args = ["oversight", "boost-review", boost["id"], "--api", "http://testserver",
            "--key", str(key), "--note", "checked"]  # fmt: skip
    r = CliRunner().invoke(app, args, env={"CLEANROOM_TOKEN": trained_api.tokens["olga"]})
    assert r.exit_code == 0, r.output
    assert "approved" in r.output
    assert (
        trained_api.call("GET", f"/v1/boosts/{boost['id']}", "olga").json()["status"] == "approved"
    )
    # the operator's reviewer key is not the oversight body's
    other = trained_api.call("POST", "/v1/boosts", "ops", json=_body(_coldest(trained_api))).json()
    op_key = trained_api.room.data_dir.keys / "reviewer-operator-reviewer.key"
    args = ["oversight", "boost-review", other["id"], "--api", "http://testserver",
            "--key", str(op_key)]  # fmt: skip
    r = CliRunner().invoke(app, args, env={"CLEANROOM_TOKEN": trained_api.tokens["olga"]})
    assert r.exit_code != 0 and "oversight body" in str(r.exception)
