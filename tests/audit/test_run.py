"""The audit over HTTP: sock puppets with personas drive the real feed API
(their events through the platform's ingest), the report (HTML with plots and
JSON) says what it was computed against, and the figures behave as they
must: personas get more of their topic than a random draw, the
non-personalised feed is the same for puppets with different histories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cleanroom.audit.puppets import Accounts
from cleanroom.audit.report import (
    AuditTarget,
    findings,
    kept_reports,
    run_audit,
    verdict,
    write_report,
)
from cleanroom.audit.topics import TAGGED
from cleanroom.oversight import Watcher
from cleanroom.room.accounts import provision
from tests.support import Api, retrain, run_cli, serve_feeds

URL = "http://testserver/log/"


def test_audit_with_puppets_replay_and_report(trained_api: Api, tmp_path: Path, log_signer) -> None:
    retrain(trained_api)
    serve_feeds(trained_api, range(6))  # some real traffic
    size = len(trained_api.ledger())
    acc = provision(trained_api.room, 4)
    assert trained_api.ledger()[acc["ledger_index"]]["type"] == "audit.accounts"
    assert len(trained_api.ledger()) == size + 1
    path = tmp_path / "acc.json"
    path.write_text(json.dumps(acc))
    accounts = Accounts.read(path)
    trained_api.room.log.integrate()
    watcher = Watcher(URL, log_signer.verifier, tmp_path / "mon", client=trained_api.client)
    verified = watcher.verified(
        "http://testserver", trained_api.tokens["olga"], client=trained_api.client
    )

    target = AuditTarget("http://testserver", trained_api.tokens["olga"], trained_api.client)
    doc = run_audit(
        target, accounts=accounts, verified=verified, n_personas=4, pages=4,
        page_size=5, flagged={"t3"},
    )  # fmt: skip
    assert doc["topics"]["source"] == TAGGED and doc["topics"]["count"] == 4
    assert doc["checkpoint"]["verified_by_monitor"] and doc["checkpoint"]["size"] >= size
    assert doc["live"]["model_version"] in doc["window"]["model_versions"]
    assert doc["replay"]["replayed"] >= 6 and doc["replay"]["mismatched"] == 0
    assert doc["exposure"]["impressions"] >= 60
    pup = doc["puppets"]
    assert [p["videos"] for p in pup["personas"]] == [20] * 4
    # each persona's interest is one of four topics: a random draw gives ~1/4
    assert all(0.15 < p["baseline_random"] < 0.35 for p in pup["personas"])
    assert pup["mean_exploit_fraction"] > pup["mean_baseline_random"]
    npf = pup["non_personalised_ignores_history"]
    assert npf["checked"] and npf["identical"], npf
    assert all(p["topic_share_curve"] and len(p["topic_share_curve"]) == 4 for p in pup["personas"])
    # the puppets' events went through the platform's ingest, on the record
    events = [
        e
        for e in trained_api.ledger()
        if e.get("type") == "access" and e.get("principal") == "audit-ingest"
    ]
    assert events

    html = tmp_path / "out" / "audit.html"
    json_path = write_report(doc, html, state_dir=tmp_path / "mon")
    # kept in the monitor's state: the oversight console lists it and shows it
    kept = kept_reports(tmp_path / "mon")
    assert [p.stem for p in kept] == [str(doc["generated_ms"])]
    trained_api.app.state.monitor_state = str(tmp_path / "mon")
    client = trained_api.client
    r = client.post("/console/login", data={"token": trained_api.tokens["olga"]})
    assert r.status_code == 200
    listed = client.get("/console/oversight")
    assert f"/console/oversight/audits/{kept[0].stem}" in listed.text
    shown = client.get(f"/console/oversight/audits/{kept[0].stem}")
    assert shown.status_code == 200 and "No finding" in shown.text
    assert client.get("/console/oversight/audits/123").status_code == 404
    client.cookies.clear()
    assert client.get(f"/console/oversight/audits/{kept[0].stem}").status_code == 401
    text = html.read_text()
    assert text.count("<img") >= 4 and "verified by the oversight monitor" in text
    assert "Sock-puppet audit" in text and "Replay audit" in text
    # a decision document: the verdict, then the findings, then method, then evidence
    order = [text.index(h) for h in ("Verdict", "Findings (", "Method,", "Evidence")]
    assert order == sorted(order)
    assert "No finding: what was served is what was approved" in text  # nothing was wrong
    assert doc["alerts"]["incidents"] == [] and "alerts" not in text.split("Method,")[0]
    assert json.loads(json_path.read_text())["checkpoint"] == doc["checkpoint"]
    # without a monitor state: the checkpoint as served, said to be unverified
    bare = run_audit(target)
    assert bare["checkpoint"]["verified_by_monitor"] is False
    assert bare["checkpoint"]["size"] >= doc["checkpoint"]["size"]
    assert "replay" not in bare and "puppets" not in bare
    found = findings({**bare, "replay": {"replayed": 10, "mismatched": 4, "mismatch_rate": 0.4}})
    assert [f["severity"] for f in found] == ["critical", "high"]  # replay; unverified checkpoint
    assert verdict(found).startswith("Not compliant")


def test_audit_cli_errors(tmp_path: Path) -> None:
    bad = tmp_path / "acc.json"
    bad.write_text("{not json")
    for args in (
        ["--report", str(tmp_path / "r.txt")],
        ["--report", str(tmp_path / "r.html"), "--accounts", str(bad)],
        ["--report", str(tmp_path / "r.html"), "--monitor-state", str(tmp_path)],
        ["--report", str(tmp_path / "r.html")],  # nothing listens there
    ):
        r = subprocess.run(
            [sys.executable, "-m", "cleanroom.cli", "audit", "run", "--api",
             "http://127.0.0.1:9", "--token", "t", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_broken_monitor_state_is_one_line(tmp_path: Path) -> None:
    """The audit reads the monitor's settings: a state directory whose
    watch.json is not one is a clear error, not a traceback."""
    state = tmp_path / "mon"
    state.mkdir()
    for broken in ("{}", "[1]", "not json", '{"url": "x", "vkey": "k", "witnesses": 3}'):
        (state / "watch.json").write_text(broken)
        r = run_cli(["audit", "run", "--api", "http://127.0.0.1:9", "--report",
                     str(tmp_path / "r.html"), "--monitor-state", str(state), "--token", "t"],
                    tmp_path)  # fmt: skip
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (broken, r.stderr)
        assert "watch.json" in r.stderr or "verifier key" in r.stderr, r.stderr
