"""The monitor as a witness: it cosigns the clean room's checkpoints over
HTTP (C2SP tlog-witness), a monitor pinned to its own cosignature verifies
them, and a split view — the log asking it to cosign a checkpoint of another
history, or a cosigned checkpoint outside the verified history — is a fork
alert with both notes as evidence."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.checkpoint import Checkpoint
from cleanroom.ledger.note import open_note
from cleanroom.ledger.witness import AddCheckpointRequest, WitnessEndpoint
from cleanroom.oversight import Watcher
from cleanroom.oversight.witness import init_key
from tests.support import run_cli, running_api

URL = "http://testserver/log/"


def _forged(log_signer, origin: str, size: int) -> str:
    """A checkpoint under the log's key over entries the log never had."""
    tree = MemoryTree()
    for i in range(size):
        tree.append(b"forged %d" % i)
    return sign_note(Checkpoint(origin, size, tree.root()).text(), [log_signer])


def test_the_monitor_cosigns_what_it_can_verify(tmp_path: Path, db_url: str, log_signer) -> None:
    state = tmp_path / "oversight"
    vkey = init_key(state, "oversight.example/monitor")
    assert init_key(state, "other.example/name") == vkey  # created once
    with running_api(tmp_path, db_url, log_signer) as a:
        log = a.room.log
        w = Watcher(URL, log_signer.verifier, state, witnesses=[vkey], quorum=1, client=a.client)
        assert w.witness is not None
        with TestClient(w.witness.app()) as wc:
            endpoint = WitnessEndpoint(vkey, "http://testserver/witness")
            cp = log.integrate() or log.store.latest()
            log.cosign(wc, endpoint, cp)
            # the published checkpoint carries the monitor's cosignature
            assert len(open_note(log.store.latest().note, [vkey]).verified) == 1
            report = w.run_once()
            assert report.new_alerts == [] and report.size == cp.size

            log.append({"type": "test.more", "v": 1})
            # the running server's integrator may have folded it in first
            cp2 = log.integrate() or log.store.latest()
            assert cp2.size == cp.size + 1
            log.cosign(wc, endpoint, cp2)  # consistent: cosigned
            assert w.run_once().new_alerts == []
            assert w.witness.status()["cosigned_size"] == cp2.size

            # a split view: the same key, another history, the witness's size as old size
            forged = _forged(log_signer, w.monitor.origin, cp2.size + 3)
            req = AddCheckpointRequest(cp2.size, [], forged)
            r = wc.post("/witness/add-checkpoint", content=req.encode())
            assert r.status_code == 422, r.text
            alerts = w.run_once().new_alerts
            assert [x.kind for x in alerts] == ["fork"]
            assert forged.split("\n")[2] in alerts[0].evidence["refused_request"]
            assert w.run_once().new_alerts == []  # raised once
            assert w.witness.status()["refused"] == 1


def test_a_cosigned_checkpoint_outside_the_verified_history(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    """The log shows the witness one history and the monitor another: the
    witness cosigns (it had seen nothing before), the monitor's run catches it."""
    state = tmp_path / "oversight"
    init_key(state, "oversight.example/monitor")
    with running_api(tmp_path, db_url, log_signer) as a:
        a.room.log.integrate()
        w = Watcher(URL, log_signer.verifier, state, client=a.client)
        assert w.run_once().new_alerts == []
        size = w.monitor.load_state().size
        assert w.witness is not None
        with TestClient(w.witness.app()) as wc:
            forged = _forged(log_signer, w.monitor.origin, size - 1)
            r = wc.post(
                "/witness/add-checkpoint", content=AddCheckpointRequest(0, [], forged).encode()
            )
            assert r.status_code == 200  # a new witness has nothing to hold it against
        alerts = w.run_once().new_alerts
    assert [x.kind for x in alerts] == ["fork"]
    assert "not in the history the monitor verified" in alerts[0].message
    assert alerts[0].evidence["witness_cosigned"].startswith(w.monitor.origin)


def test_witness_init_and_listen_errors(tmp_path: Path) -> None:
    state = tmp_path / "o"
    r = run_cli(
        ["oversight", "witness-init", "--name", "ov.example/w", "--state-dir", str(state)], tmp_path
    )
    assert r.returncode == 0 and r.stdout.startswith("ov.example/w+")
    assert (state / "witness.key").stat().st_mode & 0o777 == 0o600
    r = run_cli(
        ["oversight", "witness-init", "--name", "bad name", "--state-dir", str(tmp_path / "p")],
        tmp_path,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    vkey = run_cli(
        ["oversight", "witness-init", "--name", "ov.example/w", "--state-dir", str(state)], tmp_path
    ).stdout.strip()
    for listen in ("nonsense", ":80", "host:port"):
        r = run_cli(
            ["oversight", "watch", "--url", URL, "--vkey", vkey, "--state-dir", str(tmp_path / "q"),
             "--listen", listen, "--once"],
            tmp_path,
        )  # fmt: skip
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
