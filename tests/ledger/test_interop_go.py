"""An independent implementation accepts our checkpoints, proofs and cosignatures.

Go's golang.org/x/mod/sumdb/note and sumdb/tlog (Debian: golang-go and
golang-golang-x-mod-dev) verify the log signature, an inclusion and a
consistency proof, and the witness cosignature is checked from the C2SP text
with Go's crypto/ed25519. Skipped where Go or x/mod is not installed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cleanroom.ledger.hashing import b64
from cleanroom.ledger.store import LedgerStore
from cleanroom.ledger.witness import AddCheckpointRequest, Witness
from cleanroom.storage import Database
from tests.support import ORIGIN
from tests.support_go import needs_go, run_go

HERE = Path(__file__).parent.parent / "interop"


@needs_go
def test_go_reference_implementation_accepts_our_output(
    tmp_path: Path, log_signer, witness_signer
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    store = LedgerStore(db, ORIGIN, log_signer)
    store.init()
    store.sequence([b'{"i":%d,"type":"interop","v":1}' % i for i in range(1000)])
    old = store.integrate()
    store.sequence([b'{"i":%d,"type":"interop","v":1}' % i for i in range(1000, 1337)])
    cp = store.integrate()
    witness = Witness(Database(f"sqlite:///{tmp_path / 'w.db'}"), witness_signer)
    witness.trust_log(ORIGIN, [log_signer.verifier.vkey])
    line = witness.add_checkpoint(AddCheckpointRequest(0, [], cp.note).encode())
    case = {
        "log_vkey": log_signer.verifier.vkey,
        "witness_name": witness_signer.name,
        "witness_pub": b64(witness_signer.verifier.public),
        "note": cp.note + line,
        "entry": store.entry(777).decode(),
        "index": 777,
        "inclusion": [b64(h) for h in store.inclusion_proof(777, cp.size)],
        "old_size": old.size,
        "old_root": b64(old.root),
        "consistency": [b64(h) for h in store.consistency_proof(old.size, cp.size)],
    }

    def go(case: dict) -> subprocess.CompletedProcess[str]:
        return run_go(HERE / "verify.go", case, tmp_path)

    run = go(case)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    # And it rejects a tampered proof.
    case["inclusion"][0] = b64(bytes(32))
    bad = go(case)
    assert bad.returncode != 0 and "inclusion" in bad.stderr
