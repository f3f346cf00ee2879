"""Property tests: for random trees every proof verifies, and any altered byte fails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.ledger import proofs
from cleanroom.ledger.errors import ProofError
from cleanroom.ledger.hashing import mth
from cleanroom.ledger.tree import MemoryTree


def _tree(n: int) -> MemoryTree:
    t = MemoryTree()
    for i in range(n):
        t.append(f"entry {i}".encode())
    return t


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[which])
    b[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(b)
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 600), st.data())
def test_inclusion_proofs_verify_and_any_flip_fails(n: int, data: st.DataObject) -> None:
    t = _tree(n)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    root = t.root(size)
    assert root == mth(t._levels[0][:size])
    proof = t.inclusion_proof(index, size)
    leaf = t.node(0, index)
    proofs.verify_inclusion(leaf, index, size, proof, root)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = _flip(proof, which, data.draw(st.integers(0, 255)))
        with pytest.raises(ProofError):
            proofs.verify_inclusion(leaf, index, size, bad, root)
    with pytest.raises(ProofError):
        proofs.verify_inclusion(
            _flip([leaf], 0, data.draw(st.integers(0, 255)))[0], index, size, proof, root
        )
    if size > 1:
        other = (index + data.draw(st.integers(1, size - 1))) % size
        with pytest.raises(ProofError):
            proofs.verify_inclusion(leaf, other, size, proof, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 600), st.data())
def test_consistency_proofs_verify_and_any_flip_fails(n: int, data: st.DataObject) -> None:
    t = _tree(n)
    size2 = data.draw(st.integers(1, n))
    size1 = data.draw(st.integers(1, size2))
    r1, r2 = t.root(size1), t.root(size2)
    proof = t.consistency_proof(size1, size2)
    proofs.verify_consistency(size1, size2, proof, r1, r2)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = _flip(proof, which, data.draw(st.integers(0, 255)))
        with pytest.raises(ProofError):
            proofs.verify_consistency(size1, size2, bad, r1, r2)
        with pytest.raises(ProofError):
            proofs.verify_consistency(size1, size2, proof[:-1], r1, r2)
    with pytest.raises(ProofError):
        proofs.verify_consistency(size1, size2, proof, _flip([r1], 0, 7)[0], r2)
    with pytest.raises(ProofError):
        proofs.verify_consistency(size1, size2, proof, r1, _flip([r2], 0, 200)[0])
    with pytest.raises(ProofError):
        proofs.verify_consistency(size1, size2, [*proof, r1], r1, r2)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.data())
def test_subtree_consistency_proofs_verify(n: int, data: st.DataObject) -> None:
    t = _tree(n)
    size = data.draw(st.integers(1, n))
    width_bits = data.draw(st.integers(0, max(0, size.bit_length() - 1)))
    block = 1 << width_bits
    start = data.draw(st.integers(0, (size - 1) // block)) * block
    end = data.draw(st.integers(start + 1, min(size, start + block)))
    assert proofs.is_valid_subtree(start, end)
    sub_root = mth(t._levels[0][start:end])
    proof = t.subtree_consistency_proof(start, end, size)
    proofs.verify_subtree_consistency(start, end, size, proof, sub_root, t.root(size))
    if proof:
        bad = _flip(proof, data.draw(st.integers(0, len(proof) - 1)), 3)
        with pytest.raises(ProofError):
            proofs.verify_subtree_consistency(start, end, size, bad, sub_root, t.root(size))
