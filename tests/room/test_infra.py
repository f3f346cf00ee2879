"""The Clean Network check: covered vendors, Chinese clouds for U.S. data and
FCC-covered equipment categories flagged with list and reason; the server
refuses to start on a flagged manifest unless its exceptions are an approved
release."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cleanroom.api.app import create_app
from cleanroom.ledger.entries import decode_entry
from cleanroom.room import CleanRoom
from cleanroom.room.bootstrap import reviewer_key, sign_review
from cleanroom.room.config import DataDir
from cleanroom.room.infra import InfraRefused, infra_manifest
from cleanroom.screen.errors import ManifestError
from cleanroom.screen.index import bundled_index
from cleanroom.screen.infra import check, parse_manifest
from cleanroom.screen.lists import bundled_snapshots
from cleanroom.screen.screener import Screener
from tests.support import run_cli

CLEAN = """
deployment: us-east
jurisdiction: US
providers:
  - {kind: cloud, name: Oracle Cloud Infrastructure, country: US}
  - {kind: cdn, name: Akamai Technologies, country: US}
  - {kind: carrier, name: Lumen Technologies, country: US}
"""
FLAGGED = (
    CLEAN
    + """
  - {kind: equipment, name: Hangzhou Hikvision Digital Technology Co. Ltd., category: camera,
     country: CN}
  - {kind: cloud, name: Alibaba Cloud, country: CN}
"""
)
ROUTER_ONLY = (
    CLEAN
    + """
  - {kind: equipment, name: Example Networks, category: router, country: TW}
exceptions:
  - {provider: Example Networks, approval: "conditional approval 2026-04-01"}
"""
)


@pytest.fixture(scope="module")
def screener() -> Screener:
    bundled_index()
    return Screener(bundled_snapshots())


def test_covered_vendor_and_chinese_cloud_are_flagged_with_list_and_reason(screener) -> None:
    report = check(parse_manifest(FLAGGED), screener)
    flagged = {f.provider.name: f for f in report.flagged}
    assert set(flagged) == {"Hangzhou Hikvision Digital Technology Co. Ltd.", "Alibaba Cloud"}
    hik = flagged["Hangzhou Hikvision Digital Technology Co. Ltd."]
    assert {"fcc-covered", "ofac-cons"} <= set(hik.lists)
    assert any("FCC-COVERED" in r and "March 12, 2021" in r for r in hik.reasons)
    assert flagged["Alibaba Cloud"].lists == ["country-of-concern"]
    assert not report.ok and len(report.blocking) == 2
    assert check(parse_manifest(CLEAN), screener).ok


def test_fcc_covered_equipment_category_is_flagged_and_an_exception_is_noted(screener) -> None:
    report = check(parse_manifest(ROUTER_ONLY), screener)
    [f] = report.flagged
    assert f.lists == ["fcc-covered"] and "Routers" in f.reasons[0]
    assert f.exception == "conditional approval 2026-04-01" and report.ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers: [", "not YAML"),
        ("- a\n- b\n", "a mapping"),
        ("providers: []\n", "non-empty list"),
        ("providers:\n  - {kind: satellite, name: X}\n", "kind 'satellite'"),
        ("providers:\n  - {kind: cloud}\n", "has no name"),
        ("providers:\n  - {kind: cloud, name: X, colour: red}\n", "unknown keys"),
        ("providers:\n  - {kind: cloud, name: X}\nexceptions:\n  - {provider: X}\n", "approval"),
        ("providers:\n  - {kind: cloud, name: X}\nregion: x\n", "unknown keys"),
    ],
)
def test_malformed_manifests(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)


def _dir_with_manifest(data_dir: DataDir, text: str) -> Path:
    path = data_dir.path / "deploy.yaml"
    path.write_text(text)
    config = data_dir.load()
    config.screening.infra_manifest = "deploy.yaml"
    data_dir.save(config)
    return path


def _infra_entries(data_dir: DataDir) -> list[dict]:
    with CleanRoom.open(data_dir, start=False) as room:
        return [
            e
            for _, b in room.log.store.entries()
            if (e := decode_entry(b))["type"] == "screen.infra"
        ]


def test_server_refuses_to_start_on_a_flagged_manifest(data_dir: DataDir) -> None:
    _dir_with_manifest(data_dir, FLAGGED)
    with (
        pytest.raises(InfraRefused, match="Alibaba Cloud"),
        TestClient(create_app(str(data_dir.path))),
    ):
        pass
    [entry] = _infra_entries(data_dir)
    assert entry["ok"] is False and len(entry["flagged"]) == 2


def test_exceptions_count_only_as_an_approved_infra_release(data_dir: DataDir) -> None:
    path = _dir_with_manifest(data_dir, ROUTER_ONLY)
    with (
        pytest.raises(InfraRefused, match="not an approved infra release"),
        TestClient(create_app(str(data_dir.path))),
    ):
        pass
    digest, manifest = infra_manifest(path)
    with CleanRoom.open(data_dir, background=False) as room:
        art = room.releases.submit(
            "infra", "deploy.yaml", digest, manifest, submitted_by="ops", org="operator"
        )
        for name, org in (("operator-reviewer", "operator"), ("oversight-reviewer", "oversight")):
            key = reviewer_key(data_dir, name)
            room.releases.review(digest, sign_review(key, art, org=org, comment="router ok"))
        room.log.integrate()
    with TestClient(create_app(str(data_dir.path))) as client:
        h = {"Authorization": "Bearer " + _token(client, "screening-service")}
        report = client.get("/v1/screen/infra", headers=h).json()
        assert report["ok"] and report["exceptions_approved"] and report["flagged"] == 1
    assert [e["ok"] for e in _infra_entries(data_dir)] == [False, True]


def _token(client: TestClient, name: str) -> str:
    return client.app.state.room.principals.issue_token(name)


def test_cli_infra_exit_codes(data_dir: DataDir, tmp_path: Path) -> None:
    clean, flagged, broken = (tmp_path / n for n in ("clean.yaml", "flagged.yaml", "broken.yaml"))
    clean.write_text(CLEAN)
    flagged.write_text(FLAGGED)
    broken.write_text("providers: 3\n")

    def run(path: Path) -> subprocess.CompletedProcess:
        return run_cli(["screen", "infra", str(path), "--json"], data_dir.path)

    ok = run(clean)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad = run(flagged)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["flagged"] == 2
    err = run(broken)
    assert err.returncode == 2 and err.stderr.count("\n") == 1 and "providers" in err.stderr
