"""An in-memory Merkle tree: the reference the stored and remote trees are tested against.

It keeps every perfect node level, so it suits tests, tools and small logs; the
server never holds its tree like this (it reads tiles).
"""

from __future__ import annotations

from cleanroom.ledger import proofs
from cleanroom.ledger.errors import RangeError
from cleanroom.ledger.hashing import leaf_hash, node_hash


class MemoryTree:
    """Append-only Merkle tree holding all perfect nodes in memory."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, data: bytes) -> int:
        """Append one entry; returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> int:
        index = self.size
        self._levels[0].append(h)
        level = 0
        while len(self._levels[level]) % 2 == 0:
            row = self._levels[level]
            parent = node_hash(row[-2], row[-1])
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(parent)
            level += 1
        return index

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect node (level, index)."""
        try:
            return self._levels[level][index]
        except IndexError:
            raise RangeError(
                f"node ({level}, {index}) is not complete in a tree of {self.size}"
            ) from None

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check(size)
        return proofs.range_hash(self.node, 0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        self._check(size)
        return proofs.inclusion_proof(self.node, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else size2
        self._check(size2)
        return proofs.consistency_proof(self.node, size1, size2)

    def subtree_consistency_proof(self, start: int, end: int, size: int) -> list[bytes]:
        self._check(size)
        return proofs.subtree_consistency_proof(self.node, start, end, size)

    def _check(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise RangeError(f"size {size} is beyond the tree's {self.size} entries")
