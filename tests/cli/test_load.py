"""``cleanroom load``: a platform's files into a clean room, every row through
the gate — locally and through a running server — with a validation report
for bad rows (exit code 2), nothing half-loaded from a rejected batch, and a
second run that skips what is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cleanroom.ledger.search import Query
from cleanroom.room import CleanRoom
from cleanroom.room.config import DataDir
from tests.support import Api, run_cli

USERS_CSV = "id,jurisdiction,profile.email,profile.birth_year,public.display_name\n" + "".join(
    f"u{i},US,u{i}@example.com,{1980 + i},User {i}\n" for i in range(6)
)
VIDEOS = [{"id": f"v{i}", "creator": f"c{i % 2}", "topics": ["news"], "created_ms": 1000}
          for i in range(4)]  # fmt: skip


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"e{i}", "user": f"u{i % 6}", "video": f"v{i % 4}", "kind": "view",
             "ts_ms": 10_000 + i, "watch_ms": 1500} for i in range(start, start + n)]  # fmt: skip


def _csv(rows: list[dict], cols: list[str]) -> str:
    return (
        ",".join(cols)
        + "\n"
        + "".join(",".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows)
    )


@pytest.fixture
def room_dir(tmp_path: Path) -> Path:
    """A fresh local clean room with the platform's ingest service."""
    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    add = ["principal", "add", "ingest", "--org", "platform", "--role", "ingest",
           "--jurisdiction", "US", "--kind", "service"]  # fmt: skip
    assert run_cli(add, dd).returncode == 0
    (tmp_path / "users.csv").write_text(USERS_CSV)
    (tmp_path / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in VIDEOS))
    for kind, name in (("users", "users.csv"), ("videos", "videos.jsonl")):
        r = run_cli(["load", kind, str(tmp_path / name)], dd)
        assert r.returncode == 0, r.stderr
    return dd


def _counts(dd: Path) -> dict[str, int]:
    with CleanRoom.open(DataDir(dd), background=False) as room:
        return room.vault.counts()


def _ledger(dd: Path, etype: str) -> list[dict]:
    with CleanRoom.open(DataDir(dd), background=False) as room:
        room.log.integrate()
        return [json.loads(b) for _, b in room.log.store.search(Query(type=etype, limit=500))[1]]


def test_csv_jsonl_and_parquet_load_through_the_gate(room_dir: Path, tmp_path: Path) -> None:
    assert _counts(room_dir) == {"users": 6, "videos": 4, "events": 0}
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(_events(25)), path)
    r = run_cli(["load", "events", str(path), "--batch", "10", "--json"], room_dir)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["stored"] == 25 and report["rejected"] == [] and report["read"] == 25
    assert _counts(room_dir)["events"] == 25
    writes = [e for e in _ledger(room_dir, "access") if e["resource"] == "Events"]
    assert len(writes) == 3 and {e["principal"] for e in writes} == {"ingest"}  # a decision a batch
    assert all(e["decision"] == "allow" and e["purpose"] == "ingest" for e in writes)
    # the profile is stored encrypted (what the vault reads back is what was loaded)
    with CleanRoom.open(DataDir(room_dir), background=False) as room:
        row = room.db.engine.connect().exec_driver_sql(
            "SELECT profile FROM vault_users WHERE id = 'u1'").scalar_one()  # fmt: skip
        assert b"u1@example.com" not in bytes(row)


def test_columns_of_other_names_are_mapped(room_dir: Path, tmp_path: Path) -> None:
    rows = [{"event_id": e["id"], "uid": e["user"], "video": e["video"], "kind": e["kind"],
             "time": e["ts_ms"]} for e in _events(5)]  # fmt: skip
    path = tmp_path / "warehouse.csv"
    path.write_text(_csv(rows, ["event_id", "uid", "video", "kind", "time"]))
    bare = run_cli(["load", "events", str(path)], room_dir)
    assert bare.returncode == 2 and "no column 'id'" in bare.stderr and "--map id=" in bare.stderr
    maps = ["--map", "id=event_id", "--map", "user=uid", "--map", "ts_ms=time"]
    r = run_cli(["load", "events", str(path), *maps], room_dir)
    assert r.returncode == 0, r.stderr
    assert _counts(room_dir)["events"] == 5


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "the file is empty"),
        ("id,user,video,kind,ts_ms\n", "no rows"),
        ('id,user,video,kind,ts_ms\ne1,u1,v1,"view,1\n', "line"),  # a quote never closed
        ("id,user,video,kind\ne1,u1,v1,view\n", "no column 'ts_ms'"),
    ],
    ids=["empty", "header-only", "broken-quote", "missing-column"],
)
def test_a_file_that_cannot_be_loaded_is_one_line_and_loads_nothing(
    room_dir: Path, tmp_path: Path, content: str, why: str
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(content)
    r = run_cli(["load", "events", str(path)], room_dir)
    assert r.returncode == 2, r.stdout + r.stderr
    assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _counts(room_dir)["events"] == 0


def test_bad_rows_are_reported_and_their_batch_is_not_half_loaded(
    room_dir: Path, tmp_path: Path
) -> None:
    rows = _events(12)
    rows[2]["ts_ms"] = "yesterday"  # a wrong type
    rows[7]["user"] = "u-nobody"  # an unknown user
    rows[9]["id"] = rows[8]["id"]  # a duplicate id
    path = tmp_path / "events.csv"
    path.write_text(_csv(rows, ["id", "user", "video", "kind", "ts_ms", "watch_ms"]))
    out = tmp_path / "report.json"
    r = run_cli(["load", "events", str(path), "--batch", "4", "--report", str(out)], room_dir)
    assert r.returncode == 2
    # rows are numbered by line (the header is line 1): rows[2] is line 4
    assert "row 4: ts_ms must be a non-negative integer" in r.stderr
    assert "row 11: the id 'e8' is also on row 10" in r.stderr
    assert "u-nobody" in r.stderr and "row 9" in r.stderr
    report = json.loads(out.read_text())
    assert report["batches_rejected"] == 3 and report["stored"] == 0  # every batch had one
    assert _counts(room_dir)["events"] == 0  # nothing half-loaded
    # fixed, the same command loads them all
    rows[2]["ts_ms"], rows[7]["user"], rows[9]["id"] = 10_002, "u1", "e9"
    path.write_text(_csv(rows, ["id", "user", "video", "kind", "ts_ms", "watch_ms"]))
    r = run_cli(["load", "events", str(path), "--batch", "4"], room_dir)
    assert r.returncode == 0, r.stderr
    assert _counts(room_dir)["events"] == 12


def test_an_unknown_video_and_an_id_stored_for_another_event_are_refused(
    room_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events(3)))
    assert run_cli(["load", "events", str(path)], room_dir).returncode == 0
    other = _events(3)
    other[0]["video"] = "v-nowhere"
    other[1]["watch_ms"] = 9  # e1 again with other content
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(e) + "\n" for e in other[:1]))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(e) + "\n" for e in other[1:2]))
    r = run_cli(["load", "events", str(tmp_path / "b.jsonl")], room_dir)
    assert r.returncode == 2 and "v-nowhere" in r.stderr
    r = run_cli(["load", "events", str(tmp_path / "c.jsonl")], room_dir)
    assert r.returncode == 2 and "already stored" in r.stderr and "row 1" in r.stderr
    assert _counts(room_dir)["events"] == 3


def test_a_second_run_skips_what_is_stored(room_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events(30)))
    first = run_cli(["load", "events", str(path), "--batch", "7", "--json"], room_dir)
    assert json.loads(first.stdout)["stored"] == 30
    again = run_cli(["load", "events", str(path), "--batch", "7", "--json"], room_dir)
    doc = json.loads(again.stdout)
    assert again.returncode == 0 and doc["stored"] == 0 and doc["resumed"] == 30
    # an interrupted load: the progress file says 14 rows; the batch after them
    # was stored too before the interruption — sent again, it stores nothing twice
    progress = next((room_dir / "loads").glob("events-*.json"))
    progress.write_text(json.dumps({"file": str(path), "rows_done": 14}))
    again = run_cli(["load", "events", str(path), "--batch", "7", "--json"], room_dir)
    doc = json.loads(again.stdout)
    assert doc["stored"] == 0 and doc["resumed"] == 14 and doc["read"] == 16
    assert _counts(room_dir)["events"] == 30


def test_bad_options_are_one_line(room_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("x")
    for args, why in (
        (["events", str(path)], "cannot tell the format"),
        (["events", str(path), "--format", "xml"], "--format is one of"),
        (["events", str(tmp_path / "nope.csv")], "no such file"),
        (["events", str(path), "--format", "csv", "--map", "ts_ms"], "FIELD=COLUMN"),
        (["events", str(path), "--format", "csv", "--map", "when=x"], "not a field of events"),
        (["events", str(path), "--format", "csv", "--batch", "0"], "--batch takes"),
        (["events", str(path), "--format", "csv", "--url", "http://127.0.0.1:9"], "--token"),
    ):
        r = run_cli(["load", *args], room_dir)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert why in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_the_same_load_through_a_running_servers_api(api: Api, tmp_path: Path) -> None:
    """Through the API (here the ASGI app): the same rows, the same decisions;
    a token that may not write is refused and nothing is stored."""
    from cleanroom.room.loading import HttpSink, Mapping, Report, load_file

    (tmp_path / "users.csv").write_text(USERS_CSV)
    sink = HttpSink("http://testserver", api.tokens["app"])
    sink.client = api.client  # the app in this process (the route code is the server's)
    sink.client.headers["Authorization"] = f"Bearer {api.tokens['app']}"
    report = Report("users")
    load_file(sink, "users", tmp_path / "users.csv", fmt="csv", mapping=Mapping("users"),
              batch=100, progress_dir=tmp_path / "p", report=report)  # fmt: skip
    assert report.ok and report.stored == 4  # u1 and u2 were stored already, kept as they are
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(v) + "\n" for v in VIDEOS))
    load_file(sink, "videos", tmp_path / "v.jsonl", fmt="jsonl", mapping=Mapping("videos"),
              batch=100, progress_dir=tmp_path / "p", report=Report("videos"))  # fmt: skip
    # (the seeded clean room has events e0-e9 already)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events(20, 50)))
    report = Report("events")
    load_file(sink, "events", tmp_path / "e.jsonl", fmt="jsonl", mapping=Mapping("events"),
              batch=8, progress_dir=tmp_path / "p", report=report)  # fmt: skip
    assert report.ok and report.stored == 20
    before = api.room.vault.counts()["events"]
    sink.client.headers["Authorization"] = f"Bearer {api.tokens['pete']}"  # the parent
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _events(5, 100)))
    report = Report("events")
    load_file(sink, "events", tmp_path / "f.jsonl", fmt="jsonl", mapping=Mapping("events"),
              batch=8, progress_dir=tmp_path / "p", report=report)  # fmt: skip
    assert not report.ok and "403" in report.rejected[0].reason
    assert api.room.vault.counts()["events"] == before


def test_a_batch_of_users_over_http_is_one_decision_and_all_or_nothing(api: Api) -> None:
    users = [{"id": f"b{i}", "jurisdiction": "US", "profile": {"email": f"b{i}@x.org"}}
             for i in range(3)]  # fmt: skip
    before = len(api.ledger())
    r = api.call("POST", "/v1/users", "app", json={"users": users})
    assert r.status_code == 200 and r.json()["created"] == 3, r.text
    assert len(api.ledger()) == before + 1  # one decision for the batch
    again = api.call("POST", "/v1/users", "app", json={"users": users})
    assert again.json() == {**again.json(), "created": 0, "already_stored": 3}
    count = api.room.vault.counts()["users"]
    for bad in ({"users": [*users, {"id": "b9", "jurisdiction": "usa"}]},
                {"users": [{"id": "c1", "jurisdiction": "US"}] * 2},
                {"users": [{"jurisdiction": "US"}]}, {"users": []}):  # fmt: skip
        r = api.call("POST", "/v1/users", "app", json=bad)
        assert r.status_code in (400, 422), (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert api.call("POST", "/v1/users", "pete", json={"users": users}).status_code == 403
    assert api.room.vault.counts()["users"] == count  # nothing of a refused batch


def test_a_load_killed_midway_goes_on_where_it_stopped(room_dir: Path, tmp_path: Path) -> None:
    """A real interruption: the loading process is killed once some batches
    are stored; the same command again stores the rest, each event once."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "many.parquet"
    pq.write_table(pa.Table.from_pylist(_events(40_000)), path)
    cmd = [sys.executable, "-m", "cleanroom.cli", "--data-dir", str(room_dir),
           "load", "events", str(path), "--batch", "500"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = room_dir / "loads"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(progress.glob("events-*.json")) if progress.exists() else []
        if files and json.loads(files[0].read_text())["rows_done"] >= 5_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stored = _counts(room_dir)["events"]
    assert 5_000 <= stored < 40_000, stored  # killed midway
    again = run_cli(["load", "events", str(path), "--batch", "500", "--json"], room_dir)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["resumed"] >= 5_000 and doc["resumed"] + doc["read"] == 40_000
    assert _counts(room_dir)["events"] == 40_000  # each once: ids are unique in the vault
