"""Crash test: kill -9 the server during a burst of appends.

After a restart every acknowledged entry is present at its index, and the tree
is consistent with every checkpoint signed before the crash.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from cleanroom.ledger import proofs
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.client import Monitor
from cleanroom.ledger.hashing import unb64
from cleanroom.ledger.note import open_note
from cleanroom.ledger.serving import ServerProcess
from cleanroom.room import issue_token
from cleanroom.room.config import Config, DataDir
from tests.support import ORIGIN

pytestmark = pytest.mark.slow


def burst_then_kill(server: ServerProcess, auth: dict[str, str]) -> tuple[dict, list[str]]:
    """Eight writers append as fast as they can while a reader collects the
    signed checkpoints; after two seconds the server is SIGKILLed. Returns
    the acknowledged entries by index and the checkpoint notes seen."""
    acked: dict[int, dict] = {}
    seen_notes: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5, headers=auth) as c:
            j = 0
            while not stop.is_set():
                entry = {"type": "crash.test", "v": 1, "writer": k, "seq": j}
                try:
                    r = c.post("/v1/ledger/entries", json=entry)
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 201:
                    with lock:
                        acked[r.json()["index"]] = entry
                j += 1

    def watcher() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            while not stop.is_set():
                try:
                    seen_notes.append(c.get("/log/checkpoint").text)
                except httpx.HTTPError:
                    return
                time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    threads.append(threading.Thread(target=watcher))
    for t in threads:
        t.start()
    time.sleep(2.0)
    server.kill()  # SIGKILL, mid-burst
    stop.set()
    for t in threads:
        t.join()
    return acked, seen_notes


def latest_checkpoint(c: httpx.Client, log_signer, at_least: int) -> Checkpoint:
    """The restarted log's checkpoint once it covers ``at_least`` entries."""
    deadline = time.monotonic() + 20
    while True:
        latest = parse_checkpoint(
            open_note(c.get("/log/checkpoint").text, [log_signer.verifier]).text
        )
        if latest.size >= at_least or time.monotonic() > deadline:
            return latest
        time.sleep(0.1)


def test_kill_9_during_a_burst_loses_nothing_acknowledged(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    dd = DataDir(tmp_path / "dd")
    dd.save(Config(origin=ORIGIN, database_url=db_url))
    dd.write_key("log", log_signer)
    auth = {"Authorization": "Bearer " + issue_token(dd, "ledger-writer")}
    acked, seen_notes = burst_then_kill(ServerProcess(dd.path).wait_ready(), auth)
    assert len(acked) > 100, "the burst was too small to mean anything"

    restarted = ServerProcess(dd.path).wait_ready()
    try:
        with httpx.Client(base_url=restarted.url, timeout=10) as c:
            for index, entry in acked.items():
                r = c.get(f"/v1/ledger/entries/{index}")
                assert r.status_code == 200, f"acknowledged entry {index} is missing"
                assert r.json()["entry"] == entry
            latest = latest_checkpoint(c, log_signer, max(acked) + 1)
            assert latest.size >= max(acked) + 1
            signed = [
                parse_checkpoint(open_note(n, [log_signer.verifier]).text)
                for n in seen_notes
                if n.startswith(ORIGIN)
            ]
            assert signed, "no checkpoint was observed before the crash"
            # the tree after the crash is consistent with every checkpoint signed before
            for size, root in {(s.size, s.root) for s in signed if s.size > 0}:
                body = c.get("/v1/ledger/proofs/consistency", params={"old": size}).json()
                proofs.verify_consistency(
                    size,
                    body["new"],
                    [unb64(p, "proof") for p in body["proof"]],
                    root,
                    latest.root if body["new"] == latest.size else _root_at(c, body["new"]),
                )
        report = Monitor(restarted.url + "/log/", log_signer.verifier, tmp_path / "mon").verify()
        assert report.size >= latest.size
    finally:
        restarted.stop()


def _root_at(c: httpx.Client, size: int) -> bytes:  # pragma: no cover - rare race
    note = c.get("/log/checkpoint").text
    cp = parse_checkpoint(note.split("\n\n")[0] + "\n")
    assert cp.size == size
    return cp.root
