"""``cleanroom status``: what a clean room holds and runs, and the next step
when something is missing — from an empty directory to loaded data with open
incidents."""

from __future__ import annotations

import json
from pathlib import Path

from cleanroom.oversight.alerts import Alert, AlertStore
from tests.support import run_cli


def _status(dd: Path, *args: str) -> dict:
    r = run_cli(["status", "--json", *args], dd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_status_from_nothing_to_loaded_data(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    doc = _status(dd)
    assert doc["next"] == ["cleanroom init (creates the data directory, keys and database)"]
    assert run_cli(["init"], dd).returncode == 0
    doc = _status(dd)
    assert doc["records"] == {"users": 0, "videos": 0, "events": 0}
    assert doc["site"]["jurisdiction"] == "US" and set(doc["releases"]) >= {"policy", "model"}
    assert any("principal add" in s for s in doc["next"])
    assert any("cleanroom load users" in s for s in doc["next"])
    assert any("add-witness" in s for s in doc["next"])
    add = ["principal", "add", "ingest", "--org", "platform", "--role", "ingest",
           "--jurisdiction", "US", "--kind", "service"]  # fmt: skip
    assert run_cli(add, dd).returncode == 0
    (tmp_path / "u.csv").write_text("id,jurisdiction\nu1,US\nu2,US\n")
    assert run_cli(["load", "users", str(tmp_path / "u.csv")], dd).returncode == 0
    doc = _status(dd)
    assert doc["records"]["users"] == 2 and not any("principal add" in s for s in doc["next"])
    assert any("load videos" in s for s in doc["next"])
    # with the monitor's state: open incidents, and a step to look at them
    AlertStore(tmp_path / "mon").add([Alert("deletion-late", 3, "late", {"entries": [3]})])
    doc = _status(dd, "--monitor-state", str(tmp_path / "mon"))
    assert (
        doc["alerts"]["incidents"] == 1 and doc["alerts"]["open_incidents"][0]["status"] == "open"
    )
    assert any("open incident" in s for s in doc["next"])
    text = run_cli(["status"], dd)
    assert "records         2 users, 0 videos, 0 events" in text.stdout
    assert "next: cleanroom load videos" in text.stdout
