"""The outside monitor: fetch a log's checkpoint and tiles over HTTP and verify them.

It pins the log's verifier key and a witness quorum, and persists its last
verified state (size, root, the compact range of the tree and the note) in a
directory, so each run checks that the new checkpoint extends the last one.
It recomputes the root from the entry bundles themselves — not only from the
log's tiles — so a stored entry changed after the fact is caught. Two valid
checkpoints that cannot both be true are written to ``evidence/``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cleanroom.ledger import proofs
from cleanroom.ledger.checkpoint import Checkpoint, open_checkpoint
from cleanroom.ledger.errors import (
    InconsistencyError,
    LedgerError,
    NotFoundError,
    ProofError,
)
from cleanroom.ledger.hashing import EMPTY_ROOT, b64, leaf_hash, node_hash, unb64
from cleanroom.ledger.note import Note, Verifier
from cleanroom.ledger.tiles import (
    TILE_WIDTH,
    TileHashReader,
    TileRef,
    decode_bundle,
    split_hashes,
    tile_width_for,
)

# Entry bundles of already verified entries read again by each resumed run.
RECHECK_BUNDLES = 16


class TamperError(LedgerError):
    """Served entries do not hash to the signed tree: stored data was altered."""

    status = 409
    title = "Log entries do not match the signed tree"

    def __init__(self, message: str, indices: list[int]) -> None:
        super().__init__(message)
        self.indices = indices


class TileClient:
    """Reads a tlog-tiles log over HTTP (full tiles are cached: they are immutable)."""

    def __init__(self, prefix: str, client: httpx.Client | None = None) -> None:
        self.prefix = prefix.rstrip("/") + "/"
        self.http = client or httpx.Client(
            timeout=30.0, headers={"Accept-Encoding": "gzip, identity"}
        )
        self._full: dict[tuple[int, int], bytes] = {}

    def _get(self, path: str) -> bytes:
        try:
            resp = self.http.get(self.prefix + path)
        except httpx.HTTPError as exc:
            raise LedgerError(f"cannot fetch {self.prefix}{path}: {exc}") from exc
        if resp.status_code == 404:
            raise NotFoundError(f"{self.prefix}{path} not found")
        if resp.status_code != 200:
            raise LedgerError(f"{self.prefix}{path}: HTTP {resp.status_code}")
        return resp.content

    def checkpoint(self) -> str:
        return self._get("checkpoint").decode("utf-8", errors="replace")

    def tile(self, ref: TileRef) -> bytes:
        key = (ref.level, ref.index)
        if key in self._full:
            return self._full[key][: ref.width * 32]
        data = self._get(ref.path())
        split_hashes(data, ref.width)  # length check
        if not ref.is_partial:
            self._full[key] = data
        return data

    def bundle(self, index: int, width: int) -> list[bytes]:
        data = self._get(TileRef(-1, index, width).path())
        return decode_bundle(data, width)

    def reader(self, size: int) -> TileHashReader:
        return TileHashReader(self.tile, size)


class CompactRange:
    """The right edge of a tree: perfect-subtree hashes for the bits of its size."""

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        self.size = size
        self.hashes = list(hashes or [])
        if len(self.hashes) != bin(size).count("1"):
            raise LedgerError("compact range does not match its size")

    def append(self, h: bytes) -> None:
        self.hashes.append(h)
        self.size += 1
        n = self.size
        while n & 1 == 0:  # merge equal-sized subtrees
            right = self.hashes.pop()
            left = self.hashes.pop()
            self.hashes.append(node_hash(left, right))
            n >>= 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r


@dataclass
class MonitorState:
    """What a monitor verified last: the tree size, root and compact range."""

    origin: str
    size: int
    root: bytes
    compact: list[bytes]
    note: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "origin": self.origin,
                "size": self.size,
                "root": b64(self.root),
                "compact": [b64(h) for h in self.compact],
                "note": self.note,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> MonitorState:
        try:
            d = json.loads(text)
            return cls(
                d["origin"],
                int(d["size"]),
                unb64(d["root"], "state root", 32),
                [unb64(h, "compact hash", 32) for h in d["compact"]],
                d["note"],
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise LedgerError(f"monitor state file is corrupt: {exc}") from None


@dataclass
class MonitorReport:
    """One verification step of a monitor: from which size to which, and the new root."""

    origin: str
    old_size: int
    size: int
    root: str
    entries_checked: int
    cosigners: list[str]
    warnings: list[str] = field(default_factory=list)
    rechecked: int = 0  # entries verified before and read again this run
    rolled_back_from: str | None = None  # the larger checkpoint verified before, if the
    # log now serves a smaller one


class Monitor:
    """An oversight monitor with pinned keys and persistent verified state."""

    def __init__(
        self,
        url: str,
        log_key: Verifier,
        state_dir: Path,
        *,
        witnesses: list[Verifier] | None = None,
        quorum: int = 0,
        origin: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.tiles = TileClient(url, client)
        self.log_key = log_key
        self.witnesses = list(witnesses or [])
        if quorum > len(self.witnesses):
            raise LedgerError(f"quorum {quorum} exceeds the {len(self.witnesses)} pinned witnesses")
        self.quorum = quorum
        self.origin = origin or log_key.name
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def load_state(self) -> MonitorState | None:
        if not self.state_file.exists():
            return None
        return MonitorState.from_json(self.state_file.read_text())

    def _save_state(self, state: MonitorState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(state.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    def open_checkpoint(self, text: str) -> tuple[Checkpoint, Note, list[str]]:
        """Verify the log signature, the witness quorum and the origin."""
        return open_checkpoint(text, self.log_key, self.witnesses, self.quorum, self.origin)

    def _evidence(self, reason: str, old: str, new: str) -> Path:
        d = self.state_dir / "evidence"
        d.mkdir(exist_ok=True)
        path = d / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{time.time_ns()}.txt"
        path.write_text(f"{reason}\n\n--- checkpoint 1\n{old}\n--- checkpoint 2\n{new}")
        return path

    def verify(
        self,
        full: bool = False,
        progress: Callable[[int, int], None] | None = None,
        on_entry: Callable[[int, bytes], None] | None = None,
        recheck: int = RECHECK_BUNDLES,
    ) -> MonitorReport:
        """Fetch, verify and record the log's current checkpoint.

        ``full`` recomputes the tree from entry 0 (an audit of every stored entry)
        instead of continuing from the last verified state. ``on_entry`` is
        given each entry (index, body) as it is read and hashed; the entries are
        proven only if ``verify`` returns (it raises otherwise), so a caller
        keeps nothing it derived from them until then.

        A resumed run also reads again entries it verified before: every entry
        bundle while there are at most ``recheck`` of them, else ``recheck``
        bundles drawn at random (an edit of m of B verified bundles is found by
        one run with probability 1 - (1 - m/B)^recheck, and by n runs with
        probability 1 - (1 - m/B)^(n·recheck)).
        """
        text = self.tiles.checkpoint()
        cp, _note, cosigners = self.open_checkpoint(text)
        state = self.load_state()
        warnings: list[str] = []
        if state is not None and state.origin != cp.origin:
            raise LedgerError("monitor state belongs to another log; use another state dir")
        if state is not None:
            self._check_against_state(state, cp, text, warnings)
        # The tiles must reproduce the signed root.
        reader = self.tiles.reader(cp.size)
        if proofs.range_hash(reader.node, 0, cp.size) != cp.root:
            raise TamperError("the log's tiles do not hash to the signed root", [])
        # Recompute the root from the entries themselves.
        if full or state is None or state.size > cp.size:
            compact = CompactRange()
        else:
            compact = CompactRange(state.size, state.compact)
        start = compact.size
        bad, rechecked = self._recheck(reader, min(start, cp.size), recheck)
        bad += self._replay_entries(compact, reader, cp.size, progress, on_entry)
        if bad:
            shown = ", ".join(map(str, bad[:10]))
            noun = "entry does" if len(bad) == 1 else "entries do"
            raise TamperError(f"{len(bad)} {noun} not hash to the signed tree (index {shown})", bad)
        if compact.root() != cp.root:
            raise TamperError("entries do not reproduce the signed root", [])
        if state is None or cp.size >= state.size:
            self._save_state(MonitorState(cp.origin, cp.size, cp.root, compact.hashes, text))
        rolled_back = state.note if state is not None and cp.size < state.size else None
        return MonitorReport(
            cp.origin,
            state.size if state else 0,
            cp.size,
            b64(cp.root),
            cp.size - start,
            cosigners,
            warnings,
            rechecked,
            rolled_back,
        )

    def _recheck(self, reader: TileHashReader, size: int, bundles: int) -> tuple[list[int], int]:
        """Read entries below ``size`` again (all bundles, or ``bundles`` drawn
        at random): those that no longer hash to the signed tree, and how many
        were read."""
        total = (size + TILE_WIDTH - 1) // TILE_WIDTH
        chosen = (
            range(total)
            if total <= bundles
            else sorted(secrets.SystemRandom().sample(range(total), bundles))
        )
        bad: list[int] = []
        read = 0
        for n in chosen:
            width = tile_width_for(0, n, size)
            entries, tile = self.tiles.bundle(n, width), reader.tile(0, n)
            bad += [n * TILE_WIDTH + i for i in range(width) if leaf_hash(entries[i]) != tile[i]]
            read += width
        return bad, read

    def _check_against_state(
        self, state: MonitorState, cp: Checkpoint, text: str, warnings: list[str]
    ) -> None:
        if cp.size == state.size:
            if cp.root != state.root:
                path = self._evidence("same size, different roots", state.note, text)
                raise InconsistencyError(
                    f"checkpoint at size {cp.size} has a different root than the one verified "
                    f"before; evidence kept in {path}"
                )
            return
        small, big = (state, cp) if state.size < cp.size else (cp, state)
        if small.size == 0:
            return
        try:
            reader = self.tiles.reader(big.size)
            proof = proofs.consistency_proof(reader.node, small.size, big.size)
            proofs.verify_consistency(small.size, big.size, proof, small.root, big.root)
        except (ProofError, NotFoundError) as exc:
            path = self._evidence(f"no consistency proof: {exc}", state.note, text)
            raise InconsistencyError(
                f"checkpoint {cp.size} is not consistent with verified checkpoint {state.size}; "
                f"evidence kept in {path}"
            ) from None
        if cp.size < state.size:
            warnings.append(
                f"log served an older checkpoint ({cp.size}) than one verified ({state.size})"
            )

    def _replay_entries(
        self,
        compact: CompactRange,
        reader: TileHashReader,
        size: int,
        progress: Callable[[int, int], None] | None,
        on_entry: Callable[[int, bytes], None] | None = None,
    ) -> list[int]:
        bad: list[int] = []
        index = compact.size
        while index < size:
            bundle_no = index // TILE_WIDTH
            width = tile_width_for(0, bundle_no, size)
            entries = self.tiles.bundle(bundle_no, width)
            tile = reader.tile(0, bundle_no)
            for i in range(index % TILE_WIDTH, width):
                h = leaf_hash(entries[i])
                if h != tile[i]:
                    bad.append(bundle_no * TILE_WIDTH + i)
                if on_entry is not None:
                    on_entry(bundle_no * TILE_WIDTH + i, entries[i])
                compact.append(h)
            index = bundle_no * TILE_WIDTH + width
            if progress is not None:
                progress(index, size)
        return bad
