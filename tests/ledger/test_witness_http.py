"""The witness over HTTP (C2SP tlog-witness) and a log that asks it to cosign."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from cleanroom.api import create_app
from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.checkpoint import Checkpoint
from cleanroom.ledger.log import Log
from cleanroom.ledger.note import open_note
from cleanroom.ledger.witness import AddCheckpointRequest, Witness, WitnessEndpoint, origin_hash
from cleanroom.room.config import Config, DataDir
from cleanroom.storage import Database
from tests.support import ORIGIN


def test_witness_endpoints_and_log_cosigning(
    tmp_path: Path, db_url: str, log_signer, witness_signer
) -> None:
    wd = DataDir(tmp_path / "w")
    wd.save(Config(origin="witness.example/w", database_url=db_url))
    wd.write_key("witness", witness_signer)
    Witness(wd.database(), witness_signer).trust_log(ORIGIN, [log_signer.verifier.vkey])
    with TestClient(create_app(str(wd.path), log=False)) as w:
        tree = MemoryTree()
        for i in range(50):
            tree.append(b"%d" % i)
        note = sign_note(Checkpoint(ORIGIN, 10, tree.root(10)).text(), [log_signer])
        r = w.post("/witness/add-checkpoint", content=AddCheckpointRequest(0, [], note).encode())
        assert r.status_code == 200 and r.text.startswith("— witness.example/w1 ")
        r = w.post("/witness/add-checkpoint", content=AddCheckpointRequest(0, [], note).encode())
        assert r.status_code == 409
        assert r.headers["content-type"] == "text/x.tlog.size" and r.text == "10\n"
        r = w.post("/witness/add-checkpoint", content=b"garbage")
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        got = w.get(f"/witness/{origin_hash(ORIGIN)}/checkpoint")
        assert got.status_code == 200
        assert len(open_note(got.text, [witness_signer.verifier]).verified) == 1
        assert w.get(f"/witness/{'0' * 64}/checkpoint").status_code == 404
        assert w.get("/witness/nothex/checkpoint").status_code == 400

        # A log that asks this witness (through the ASGI client) to cosign.
        log = Log(
            Database(db_url.replace("cleanroom.db", "log.db"))
            if "sqlite" in db_url
            else Database(db_url),
            ORIGIN,
            log_signer,
        ).start(background=False)
        try:
            # start from the witness's state (10): append the same 50 leaves
            log.append_many([b"%d" % i for i in range(50)])
            cp = log.integrate()
            assert cp is not None and cp.root == tree.root()
            endpoint = WitnessEndpoint(witness_signer.verifier, "http://testserver/witness")
            lines = log.cosign(w, endpoint, cp)  # 409 first (witness at 10), then 200
            assert lines.startswith("— witness.example/w1 ")
            stored = log.store.latest().note
            assert len(open_note(stored, [witness_signer.verifier]).verified) == 1
            assert log.store.witness_size(witness_signer.name) == 50
        finally:
            log.close()
    assert isinstance(w, httpx.Client)
