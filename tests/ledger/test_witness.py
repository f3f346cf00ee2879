"""The C2SP tlog-witness: status codes, atomic state, never cosigning a fork."""

from __future__ import annotations

import threading

import pytest

from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.checkpoint import Checkpoint
from cleanroom.ledger.hashing import EMPTY_ROOT
from cleanroom.ledger.note import generate_signer, open_note
from cleanroom.ledger.witness import AddCheckpointRequest, Witness, WitnessError, origin_hash
from cleanroom.storage import Database
from tests.support import ORIGIN


def _tree(n: int, tag: str = "e") -> MemoryTree:
    t = MemoryTree()
    for i in range(n):
        t.append(f"{tag}{i}".encode())
    return t


def _note(signer, tree: MemoryTree, size: int) -> str:
    return sign_note(Checkpoint(ORIGIN, size, tree.root(size)).text(), [signer])


def _req(old: int, proof: list[bytes], note: str) -> bytes:
    return AddCheckpointRequest(old, proof, note).encode()


@pytest.fixture
def witness(db: Database, log_signer, witness_signer) -> Witness:
    w = Witness(db, witness_signer)
    w.trust_log(ORIGIN, [log_signer.verifier.vkey])
    return w


def _status(w: Witness, body: bytes) -> int:
    try:
        w.add_checkpoint(body)
    except WitnessError as exc:
        return exc.status
    return 200


def test_witness_protocol(witness: Witness, log_signer, witness_signer) -> None:
    tree = _tree(300)
    line = witness.add_checkpoint(_req(0, [], _note(log_signer, tree, 10)))
    assert line.startswith("— witness.example/w1 ")
    note = _note(log_signer, tree, 10) + line
    assert len(open_note(note, [witness_signer.verifier]).verified) == 1
    # 409: stale old size, body tells the current size
    with pytest.raises(WitnessError) as exc:
        witness.add_checkpoint(_req(0, [], _note(log_signer, tree, 20)))
    assert exc.value.status == 409 and exc.value.size == 10
    # 200 with a real consistency proof
    witness.add_checkpoint(_req(10, tree.consistency_proof(10, 300), _note(log_signer, tree, 300)))
    # 422: fork with a proof that does not verify — and evidence is kept
    fork = _tree(400, "forged")
    assert (
        _status(witness, _req(300, fork.consistency_proof(300, 400), _note(log_signer, fork, 400)))
        == 422
    )
    assert witness.evidence() and "does not verify" in witness.evidence()[0]["reason"]
    # 422: same size, different root
    assert _status(witness, _req(300, [], _note(log_signer, fork, 300))) == 422
    # 404: unknown origin
    other = generate_signer("other.example/log")
    foreign = sign_note(Checkpoint("other.example/log", 1, EMPTY_ROOT).text(), [other])
    assert _status(witness, _req(0, [], foreign)) == 404
    # 403: signed by an untrusted key / a bad signature from the trusted key
    impostor = generate_signer(ORIGIN)
    assert _status(witness, _req(300, [], _note(impostor, tree, 300))) == 403
    forged = _note(log_signer, tree, 300).replace("\n300\n", "\n301\n")
    assert _status(witness, _req(300, [], forged)) == 403
    # 400: malformed requests, old size beyond the checkpoint
    assert _status(witness, b"old x\n\n" + _note(log_signer, tree, 300).encode()) == 400
    assert _status(witness, b"old 300\n" + _note(log_signer, tree, 300).encode()) == 400
    assert (
        _status(witness, b"old 300\nnot-base64\n\n" + _note(log_signer, tree, 300).encode()) == 400
    )
    assert _status(witness, _req(301, [], _note(log_signer, tree, 300))) == 400
    assert _status(witness, _req(300, [], "garbage\n")) == 400
    # 422: size-0 checkpoint with a non-empty root
    empty_bad = sign_note(Checkpoint(ORIGIN, 0, tree.root(1)).text(), [log_signer])
    w_state = witness.latest(origin_hash(ORIGIN))
    assert w_state is not None and "\n300\n" in w_state
    assert _status(witness, _req(0, [], empty_bad)) in (409, 422)
    # After all the refusals the state is unchanged.
    assert witness.latest(origin_hash(ORIGIN)) == w_state


def test_concurrent_requests_never_roll_back(db_url: str, log_signer, witness_signer) -> None:
    witnesses = [Witness(Database(db_url), witness_signer) for _ in range(4)]
    witnesses[0].trust_log(ORIGIN, [log_signer.verifier.vkey])
    tree = _tree(100)
    witnesses[0].add_checkpoint(_req(0, [], _note(log_signer, tree, 10)))
    results: dict[int, int] = {}

    def submit(w: Witness, size: int) -> None:
        results[size] = _status(
            w, _req(10, tree.consistency_proof(10, size), _note(log_signer, tree, size))
        )

    threads = [
        threading.Thread(target=submit, args=(w, 20 + 20 * k)) for k, w in enumerate(witnesses)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [200, 409, 409, 409]
    winner = next(s for s, st in results.items() if st == 200)
    assert f"\n{winner}\n" in (witnesses[0].latest(origin_hash(ORIGIN)) or "")
    for w in witnesses:
        w.db.dispose()
