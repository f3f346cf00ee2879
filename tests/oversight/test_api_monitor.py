"""The HTTP API through the ASGI app, and the outside monitor reading it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cleanroom.api import create_app
from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.client import Monitor, TamperError
from cleanroom.ledger.entries import canonical_json
from cleanroom.ledger.errors import InconsistencyError, SignatureError
from cleanroom.ledger.note import generate_signer, parse_note
from cleanroom.ledger.tlogproof import verify_tlog_proof
from cleanroom.room import issue_token
from cleanroom.room.config import Config, DataDir
from tests.support import ORIGIN


@pytest.fixture
def client(data_dir: DataDir) -> Iterator[TestClient]:
    with TestClient(create_app(str(data_dir.path))) as c:
        c.headers["Authorization"] = "Bearer " + issue_token(data_dir, "ledger-writer")
        yield c


@pytest.fixture(scope="module")
def shared_client(
    module_db_url: str, tmp_path_factory: pytest.TempPathFactory, log_signer
) -> Iterator[TestClient]:
    """One clean room per backend, its first releases and five more entries
    published, for the requests that must change nothing."""
    dd = DataDir(tmp_path_factory.mktemp("api-monitor") / "dd")
    dd.save(Config(origin=ORIGIN, database_url=module_db_url))
    dd.write_key("log", log_signer)
    with TestClient(create_app(str(dd.path))) as c:
        c.headers["Authorization"] = "Bearer " + issue_token(dd, "ledger-writer")
        _append(c, 5)
        _publish(c)
        yield c


def _append(client: TestClient, n: int, start: int = 0) -> list[int]:
    out = []
    for i in range(start, start + n):
        r = client.post("/v1/ledger/entries", json={"type": "test.entry", "v": 1, "i": i})
        assert r.status_code == 201, r.text
        out.append(r.json()["index"])
    return out


def _publish(client: TestClient) -> None:
    client.app.state.log.integrate()


def _base(client: TestClient) -> int:
    """Entries the clean room wrote at start-up (its first releases)."""
    return client.app.state.log.store.sequenced_size()


def test_log_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/log/checkpoint" in client.get("/openapi.json").json()["paths"]
    base = _base(client)
    assert _append(client, 300 - base) == list(range(base, 300))
    r = client.post("/v1/ledger/entries?wait=true", json={"type": "test.entry", "v": 1})
    assert r.json()["checkpoint_size"] >= 301
    _publish(client)
    r = client.get("/log/checkpoint")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "no-cache" in r.headers["cache-control"]
    assert parse_checkpoint(parse_note(r.text).text).size == 301
    full = client.get("/log/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 8192
    assert "immutable" in full.headers["cache-control"]
    assert len(client.get("/log/tile/0/001.p/45").content) == 45 * 32
    assert len(client.get("/log/tile/1/000.p/1").content) == 32
    bundle = client.get("/log/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert bundle.status_code == 200 and bundle.headers.get("content-encoding") == "gzip"
    entry = client.get(f"/v1/ledger/entries/{base + 7}").json()
    assert entry["entry"] == {"type": "test.entry", "v": 1, "i": 7}
    proof = client.get("/v1/ledger/proofs/inclusion", params={"index": base + 7}).text
    cp, _ = verify_tlog_proof(
        proof, canonical_json(entry["entry"]), client.app.state.log.store.verifier
    )
    assert cp.size == 301
    cons = client.get("/v1/ledger/proofs/consistency", params={"old": 5}).json()
    assert cons["new"] == 301 and cons["proof"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/log/tile/0/001", None, 404),  # full tile does not exist yet
        ("get", "/log/tile/0/000.p/2", None, 200),
        ("get", "/log/tile/0/000.p/99", None, 404),  # beyond the tree
        ("get", "/log/tile/99/000", None, 400),
        ("get", "/log/tile/0/0001", None, 400),
        ("get", "/log/tile/entries/000.p/300", None, 400),
        ("get", "/v1/ledger/entries/999", None, 404),
        ("get", "/v1/ledger/entries/-1", None, 400),
        ("get", "/v1/ledger/entries/abc", None, 422),
        ("get", "/v1/ledger/proofs/inclusion?index=99", None, 400),
        ("get", "/v1/ledger/proofs/inclusion?index=0&size=1000000000", None, 404),
        ("get", "/v1/ledger/proofs/consistency?old=5&new=3", None, 400),
        ("post", "/v1/ledger/entries", b"{not json", 422),
        ("post", "/v1/ledger/entries", b'{"v":1}', 422),
        ("post", "/v1/ledger/entries", b"[1,2]", 422),
        ("post", "/v1/ledger/entries", b'{"type":"x","v":1,"p":"' + b"x" * 70000 + b'"}', 413),
        ("get", "/nope", None, 404),
    ],
)
def test_bad_input_gets_problem_json_and_changes_nothing(
    shared_client: TestClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    client = shared_client
    size = client.app.state.log.store.sequenced_size()
    before = client.get("/log/checkpoint").text
    r = client.request(method, path, content=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["status"] == status and problem["title"] and problem["detail"]
    _publish(client)
    assert client.get("/log/checkpoint").text == before
    assert client.app.state.log.store.sequenced_size() == size


def test_monitor_verifies_follows_and_catches_tampering(
    client: TestClient, data_dir: DataDir, tmp_path: Path, log_signer
) -> None:
    def monitor(**kw) -> Monitor:
        return Monitor(
            "http://testserver/log/", log_signer.verifier, tmp_path / "mon", client=client, **kw
        )

    base = _base(client)
    _append(client, 600 - base)
    _publish(client)
    report = monitor().verify()
    assert (report.old_size, report.size, report.entries_checked) == (0, 600, 600)
    _append(client, 10, 600)
    _publish(client)
    report = monitor().verify()
    assert (report.old_size, report.size, report.entries_checked) == (600, 610, 10)
    # quorum not met / wrong log key
    with pytest.raises(SignatureError):
        monitor(witnesses=[generate_signer("w.example/x", 4).verifier], quorum=1).verify()
    with pytest.raises(SignatureError):
        Monitor(
            "http://testserver/log/",
            generate_signer(ORIGIN).verifier,
            tmp_path / "other",
            client=client,
        ).verify()
    # an insider edits a stored entry: the full audit names it
    db = client.app.state.log.store.db
    with db.write() as conn:
        conn.execute(
            text("UPDATE ledger_entries SET body = :b WHERE idx = 300"),
            {"b": b'{"i":300,"type":"test.entry","v":2}'},
        )
    with pytest.raises(TamperError) as exc:
        monitor().verify(full=True)
    assert exc.value.indices == [300]


def test_monitor_keeps_evidence_of_a_fork(client: TestClient, tmp_path: Path, log_signer) -> None:
    _append(client, 20 - _base(client))
    _publish(client)
    mon = Monitor("http://testserver/log/", log_signer.verifier, tmp_path / "m", client=client)
    mon.verify()
    # The log's key signs a different tree of the same size: a split view.
    fork = MemoryTree()
    for i in range(20):
        fork.append(f"fork {i}".encode())
    forged = sign_note(Checkpoint(ORIGIN, 20, fork.root()).text(), [log_signer])
    mon.tiles.checkpoint = lambda: forged  # type: ignore[method-assign]
    with pytest.raises(InconsistencyError):
        mon.verify()
    evidence = list((tmp_path / "m" / "evidence").iterdir())
    assert len(evidence) == 1 and forged in evidence[0].read_text()
    assert mon.load_state().size == 20  # state unchanged
