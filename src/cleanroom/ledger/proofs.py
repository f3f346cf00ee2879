"""Merkle inclusion and consistency proofs: RFC 9162 §2.1.3-2.1.4, plus subtrees.

Generation works over any source of *perfect* node hashes — a function
``node(level, index)`` returning the hash of the perfect subtree that covers
leaves ``[index * 2**level, (index + 1) * 2**level)``. The in-memory tree, the
database-backed tiles and a remote tile client all provide one, so the same
code builds proofs everywhere.

Verification needs nothing but hashes. Subtrees ``[start, end)`` follow
draft-ietf-plants-merkle-tree-certs §4: valid when ``start < end`` and
``start`` is a multiple of the smallest power of two ``>= end - start``; an
RFC 9162 consistency proof is the subtree consistency proof of ``[0, m)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cleanroom.ledger.errors import ProofError, RangeError
from cleanroom.ledger.hashing import EMPTY_ROOT, HASH_SIZE, node_hash

NodeFn = Callable[[int, int], bytes]
MAX_PROOF_LEN = 64


def _largest_pow2_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _bit_ceil(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree per draft-ietf-plants-merkle-tree-certs §4.1."""
    return 0 <= start < end and start % _bit_ceil(end - start) == 0


# --------------------------------------------------------------------------- generation


def range_hash(node: NodeFn, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range that is a subtree (as every range in a proof is)."""
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and lo % n == 0:
        level = n.bit_length() - 1
        return node(level, lo >> level)
    k = _largest_pow2_below(n)
    return node_hash(range_hash(node, lo, lo + k), range_hash(node, lo + k, hi))


def inclusion_proof(node: NodeFn, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) — the audit path of one leaf, leaf's sibling first."""
    if not 0 <= index < size:
        raise RangeError(f"index {index} is not below tree size {size}")
    return _path(node, index, 0, size)


def _path(node: NodeFn, m: int, lo: int, hi: int) -> list[bytes]:
    proof: list[bytes] = []
    # Walk down from the root, collecting siblings, then reverse (leaf side first).
    while hi - lo > 1:
        k = _largest_pow2_below(hi - lo)
        if m < k:
            proof.append(range_hash(node, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(node, lo, lo + k))
            lo, m = lo + k, m - k
    proof.reverse()
    return proof


def consistency_proof(node: NodeFn, size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[0:size2]) — RFC 9162 §2.1.4.1. Empty when the sizes are equal."""
    if not 0 <= size1 <= size2:
        raise RangeError(f"cannot prove consistency from size {size1} to size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    return subtree_consistency_proof(node, 0, size1, size2)


def subtree_consistency_proof(node: NodeFn, start: int, end: int, size: int) -> list[bytes]:
    """Proof that subtree ``[start, end)`` is part of the tree of ``size`` leaves."""
    if not is_valid_subtree(start, end) or end > size:
        raise RangeError(f"[{start}, {end}) is not a subtree of a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    # Descend while the subtree lies wholly inside one child.
    while start != lo:
        k = _largest_pow2_below(hi - lo)
        if end <= lo + k:
            proof.append(range_hash(node, lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(node, lo, lo + k))
            lo = lo + k
    outer = proof[::-1]
    return _subproof(node, end - lo, lo, hi, True) + outer


def _subproof(node: NodeFn, m: int, lo: int, hi: int, known: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1."""
    tail: list[bytes] = []
    while True:
        n = hi - lo
        if m == n:
            head = [] if known else [range_hash(node, lo, hi)]
            return head + tail[::-1]
        k = _largest_pow2_below(n)
        if m <= k:
            tail.append(range_hash(node, lo + k, hi))
            hi = lo + k
        else:
            tail.append(range_hash(node, lo, lo + k))
            lo, m, known = lo + k, m - k, False


# --------------------------------------------------------------------------- verification


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash")


def _check_proof(proof: Sequence[bytes] | None) -> list[bytes]:
    items = list(proof or [])
    if len(items) > MAX_PROOF_LEN:
        raise ProofError(f"proof has {len(items)} hashes; at most {MAX_PROOF_LEN} are possible")
    for i, p in enumerate(items):
        _check_hash(p, f"proof hash #{i}")
    return items


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2)."""
    _check_hash(leaf, "leaf hash")
    items = _check_proof(proof)
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in items:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` in the tree (size, root)."""
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion proof for index {index} does not lead to the root")


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Inclusion of leaf ``index`` in the subtree ``[start, end)`` whose hash is ``root``."""
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ProofError(f"index {index} lies outside the subtree [{start}, {end})")
    verify_inclusion(leaf, index - start, end - start, proof, root)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless the tree (size1, root1) is a prefix of (size2, root2).

    A consistency check from the empty tree proves nothing and is rejected, as
    the RFC 9162 test vectors require; callers that accept an empty old tree
    (the witness protocol) handle size 0 themselves.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError("tree sizes cannot be negative")
    if size1 > size2:
        raise ProofError(f"old size {size1} is larger than new size {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    verify_subtree_consistency(0, size1, size2, proof, root1, root2)


def verify_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ProofError unless subtree ``[start, end)`` with hash root1 is in (size, root2).

    An empty subtree (``start == end <= size``) is trivially consistent with any
    tree: it needs an empty proof and the empty-tree hash as its root.
    """
    items = _check_proof(proof)
    if 0 <= start == end <= size:
        if items:
            raise ProofError("an empty subtree needs an empty proof")
        if root1 != EMPTY_ROOT:
            raise ProofError("an empty subtree must have the empty-tree hash")
        return
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if end > size:
        raise ProofError(f"subtree end {end} is beyond tree size {size}")
    got1, got2 = _replay_subtree(start, end, size, items, root1)
    if items:
        raise ProofError(f"consistency proof has {len(items)} unused hashes")
    if got1 != root1:
        raise ProofError("consistency proof does not reproduce the old root")
    if got2 != root2:
        raise ProofError("consistency proof does not reproduce the new root")


def _replay_subtree(
    start: int, end: int, size: int, items: list[bytes], known: bytes
) -> tuple[bytes, bytes]:
    """Consume ``items`` from the end, mirroring subtree_consistency_proof.

    Returns (recomputed subtree hash, recomputed tree root).
    """

    def pop() -> bytes:
        if not items:
            raise ProofError("consistency proof is too short")
        return items.pop()

    # Outer part: siblings above the node whose left edge the subtree starts at.
    lo, hi = 0, size
    outer: list[tuple[bool, bytes]] = []
    while start != lo:
        k = _largest_pow2_below(hi - lo)
        if end <= lo + k:
            outer.append((False, pop()))  # sibling on the right
            hi = lo + k
        else:
            outer.append((True, pop()))  # sibling on the left
            lo = lo + k
    # Inner part: RFC 9162 SUBPROOF(end - lo, D[lo:hi], true).
    m = end - lo
    inner: list[tuple[bool, bytes]] = []
    is_known = True
    while m != hi - lo:
        k = _largest_pow2_below(hi - lo)
        if m <= k:
            inner.append((False, pop()))
            hi = lo + k
        else:
            inner.append((True, pop()))
            lo, m, is_known = lo + k, m - k, False
    if is_known:
        old = new = known
    else:
        old = new = pop()
    for left, sib in reversed(inner):
        if left:
            old, new = node_hash(sib, old), node_hash(sib, new)
        else:
            new = node_hash(new, sib)
    for left, sib in reversed(outer):
        new = node_hash(sib, new) if left else node_hash(new, sib)
    return old, new
