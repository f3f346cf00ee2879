"""Finding 9: the monitor's memory. A resumed monitor reads again entries it
verified before (an insider's later edit is caught), and a log that drops
what it signed (truncation) or serves an older checkpoint (rollback) is a
recorded alert with evidence; the clean room's /healthz says degraded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from cleanroom.ledger import schema
from cleanroom.oversight import Watcher
from tests.support import Api, running_api, seed

URL = "http://testserver/log/"


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        seed(a)
        a.room.log.integrate()
        yield a


def _watcher(api: Api, tmp_path: Path, log_signer) -> Watcher:
    return Watcher(URL, log_signer.verifier, tmp_path / "oversight", client=api.client)


def test_a_resumed_monitor_catches_an_edit_of_what_it_verified(
    api: Api, tmp_path: Path, log_signer
) -> None:
    w = _watcher(api, tmp_path, log_signer)
    assert w.run_once().new_alerts == []
    with api.room.db.write() as conn:  # the insider rewrites entry 3 in place
        conn.execute(update(schema.entries).where(schema.entries.c.idx == 3)
                     .values(body=b'{"type":"access","v":1,"decision":"allow"}'))  # fmt: skip
    api.call("PUT", "/v1/users/u7", "app", json={"jurisdiction": "US", "profile": {}})
    api.room.log.integrate()
    report = _watcher(api, tmp_path, log_signer).run_once()  # a new process: resumed state
    assert [(a.kind, a.evidence["entries"]) for a in report.new_alerts] == [("tamper", [3])]


def test_truncation_is_an_alert_and_healthz_is_degraded(
    api: Api, tmp_path: Path, log_signer
) -> None:
    w = _watcher(api, tmp_path, log_signer)
    assert w.run_once().new_alerts == []
    size = api.room.log.store.latest().size
    assert api.client.get("/healthz").json()["status"] == "ok"
    with api.room.db.write() as conn:  # the tail of the log is gone
        conn.execute(delete(schema.entries).where(schema.entries.c.idx >= size - 3))
    alerts = w.run_once().new_alerts
    assert [a.kind for a in alerts] == ["truncated"]
    assert "verified size" in alerts[0].message and alerts[0].evidence["verified_checkpoint"]
    assert [a["kind"] for a in w.alerts.all()] == ["truncated"]
    health = api.client.get("/healthz").json()
    assert health["status"] == "degraded" and "stores" in health["last_error"]


def test_an_older_checkpoint_is_a_rollback_alert(api: Api, tmp_path: Path, log_signer) -> None:
    w = _watcher(api, tmp_path, log_signer)
    old = api.room.log.store.latest().note
    api.call("PUT", "/v1/users/u8", "app", json={"jurisdiction": "US", "profile": {}})
    api.room.log.integrate()
    assert w.run_once().new_alerts == []
    w.monitor.tiles.checkpoint = lambda: old  # type: ignore[method-assign]
    alerts = w.run_once().new_alerts
    assert [a.kind for a in alerts] == ["rollback"]
    assert alerts[0].evidence["verified_checkpoint"] != old
