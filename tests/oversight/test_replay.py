"""The replay audit: feeds served by the approved algorithm replay to the
digest committed on the ledger; a ranking weight changed at run time without a
release (a hidden boost) shows as mismatches — and as an unapproved model —
with the entries as evidence."""

from __future__ import annotations

from pathlib import Path

from cleanroom.foryou.ranker import RankingConfig
from cleanroom.oversight import Watcher
from tests.support import Api, retrain, serve_feeds

URL = "http://testserver/log/"


def test_replay_audit_passes_clean_feeds_and_catches_a_hidden_boost(
    trained_api: Api,
    tmp_path: Path,
    log_signer,
) -> None:
    retrain(trained_api)
    serve_feeds(trained_api, range(8))
    w = Watcher(URL, log_signer.verifier, tmp_path / "oversight", client=trained_api.client)
    assert w.run_once().new_alerts == []
    report, alerts = w.replay(
        "http://testserver", trained_api.tokens["olga"], client=trained_api.client
    )
    assert (report.replayed, report.mismatched, alerts) == (8, 0, [])

    # the operator boosts one creator at run time, without a release
    engine = trained_api.app.state.recommender.engine
    shipped = engine.config.raw
    rerank = {**shipped.get("rerank", {}), "creator_boosts": {"c0": 50.0}}
    engine.config = RankingConfig.parse({**shipped, "rerank": rerank})
    boosted = serve_feeds(trained_api, range(100, 108))
    shown = [i["video"] for f in boosted for i in f["items"]]
    assert shown  # the boosted feeds were served and committed

    watch = w.run_once().new_alerts
    assert {a.kind for a in watch} == {"unapproved-model"}
    assert len(watch) == 8
    report, alerts = w.replay(
        "http://testserver", trained_api.tokens["olga"], client=trained_api.client, sample=100
    )
    assert report.replayed == 16 and report.mismatched >= 1
    assert {a.kind for a in alerts} == {"replay-mismatch"}
    boosted_entries = {f["ledger_index"] for f in boosted}
    assert {a.index for a in alerts} <= boosted_entries  # only the boosted feeds differ
    assert all(a.evidence["served_config"] != a.evidence["approved_config"] for a in alerts)
    assert "proven" in alerts[0].evidence
    # the excess exposure: videos of the boosted creator took places in the head
    assert report.excess and all(int(v[1:]) % 9 == 0 for v in report.excess), report.excess
    assert report.displaced and 0 < report.undeclared_share < 1
    assert report.unverified_lists == 0
    again, new = w.replay(
        "http://testserver", trained_api.tokens["olga"], client=trained_api.client, sample=100
    )
    assert new == [] and again.mismatched == report.mismatched  # each alert once


def test_exposure_aggregates_show_a_boosted_creators_excess(trained_api: Api) -> None:
    from cleanroom.audit.exposure import exposure_report
    from cleanroom.audit.topics import from_tags

    retrain(trained_api)
    engine = trained_api.app.state.recommender.engine
    approved = engine.config
    pages = serve_feeds(trained_api, range(20))
    rows = trained_api.call("GET", "/v1/oversight/exposure", "olga").json()["items"]
    assert sum(r["impressions"] for r in rows) == sum(len(p["items"]) for p in pages)
    assert {r["ranking_config"] for r in rows} == {approved.digest()}
    assert all(set(r) >= {"video", "creator", "region", "impressions"} for r in rows)
    assert "user" not in str(rows[0]) and "u1" not in {str(v) for r in rows for v in r.values()}
    # a boost of one creator at run time: its share of impressions jumps
    rerank = {**approved.raw.get("rerank", {}), "creator_boosts": {"c0": 50.0}}
    engine.config = RankingConfig.parse({**approved.raw, "rerank": rerank})
    serve_feeds(trained_api, range(200, 220))
    rows = trained_api.call("GET", "/v1/oversight/exposure", "olga").json()["items"]

    def c0_share(config: str) -> float:
        mine = [r for r in rows if r["ranking_config"] == config]
        return sum(r["impressions"] for r in mine if r["creator"] == "c0") / sum(
            r["impressions"] for r in mine
        )

    assert c0_share(engine.config.digest()) > c0_share(approved.digest()) + 0.1
    report = exposure_report(rows, from_tags((r["video"], tuple(r["topics"])) for r in rows))
    assert report["impressions"] == sum(r["impressions"] for r in rows)
    assert trained_api.call("GET", "/v1/oversight/exposure", "pete").status_code == 403
