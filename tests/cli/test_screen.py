"""`cleanroom screen …` as a user runs it: batch JSON lines (a contract other
tools read), list loads with their delta, one-line errors that record nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.room import CleanRoom
from cleanroom.room.config import DataDir
from tests.support import run_cli

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def dd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("screen") / "dd"
    r = run_cli(["init"], d)
    assert r.returncode == 0, r.stderr
    return d


def ledger_size(d: Path) -> int:
    with CleanRoom.open(DataDir(d), start=False) as room:
        return room.log.store.sequenced_size()


def test_batch_json_lines_have_the_best_match_per_row(dd: Path, tmp_path: Path) -> None:
    f = tmp_path / "parties.csv"
    f.write_text("name,country\nZTE Corporation,CN\n中兴通讯,CN\nAcme Bakery LLC,US\n")
    before = ledger_size(dd)
    r = run_cli(["screen", "batch", str(f), "--json"], dd)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["row"] for x in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"row", "name", "list", "listed_name", "score", "decision"}
    assert rows[0]["list"] == "fcc-covered" and rows[0]["listed_name"] == "ZTE Corporation"
    assert [x["decision"] for x in rows] == ["match", "match", "clear"]
    assert rows[2]["score"] < 0.5
    assert ledger_size(dd) == before + 4  # one access decision, three screenings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("company\nZTE\n", "no 'name' column"),
        ("name\nZTE\n\n  \n", "line 3: the name to screen is empty"),
        ("name\n", "no rows"),
        ("name\n" + "x\n" * 100_001, "at most 100,000"),
        ("name,schema\nZTE,Planet\n", "unknown schema"),
    ],
)
def test_bad_batches_are_one_line_errors_and_record_nothing(
    dd: Path, tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    before = ledger_size(dd)
    r = run_cli(["screen", "batch", str(f), "--json"], dd)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert r.stdout == ""
    assert ledger_size(dd) == before


def test_loading_a_list_reports_its_delta_and_a_bad_file_changes_nothing(
    dd: Path, tmp_path: Path
) -> None:
    r = run_cli(["screen", "lists", "load", "csl", str(DATA / "csl_sample.json")], dd)
    assert r.returncode == 0, r.stderr
    assert "3 added, 0 changed, 0 removed" in r.stdout
    again = run_cli(["screen", "lists", "load", "csl", str(DATA / "csl_sample.csv")], dd)
    assert again.returncode == 0
    assert "0 added, 0 changed, 1 removed" in again.stdout  # the CSV has no UVL entry
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"name": "X"}]}')
    before = ledger_size(dd)
    r = run_cli(["screen", "lists", "load", "csl", str(bad)], dd)
    assert r.returncode == 2 and "no source list" in r.stderr
    assert ledger_size(dd) == before
    lists = json.loads(run_cli(["screen", "lists", "--json"], dd).stdout)
    assert {x["list"] for x in lists} == {"ofac-sdn", "ofac-cons", "fcc-covered", "csl"}
    hit = run_cli(["screen", "name", "Example Opto", "--json"], dd)
    assert json.loads(hit.stdout)["candidates"][0]["list"] == "csl"


def test_batch_threshold_and_limit_are_the_requests_and_bad_ones_are_one_line_errors(
    dd: Path, tmp_path: Path
) -> None:
    f = tmp_path / "parties.csv"
    f.write_text("name\nZTE Corporation\nFord Motor Company\n")
    r = run_cli(["screen", "batch", str(f), "--json", "--threshold", "0.99", "--limit", "1"], dd)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["threshold"] for x in rows] == [0.99, 0.99]
    assert rows[0]["matcher"].startswith("cleanroom-names-2/")
    assert [x["decision"] for x in rows] == ["clear", "clear"]  # ZTE scores 0.95
    assert "held below the threshold" in rows[1]["reason"]  # Ford, through the weak 'FRD'
    before = ledger_size(dd)
    for bad in (["--threshold", "0"], ["--threshold", "1.2"], ["--limit", "0"], ["--limit", "99"]):
        r = run_cli(["screen", "batch", str(f), "--json", *bad], dd)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stdout == "", r.stderr
    assert ledger_size(dd) == before
