"""The ledger's durable state: sequenced entries, tiles and signed checkpoints.

Sequencing (assigning indices and storing entries) is one short transaction that
bumps a counter row, so indices are dense and ordered even with several server
processes. Integration (growing the tiles and signing a new checkpoint) runs in
the background: it locks the checkpoint row, extends the tiles with the newly
sequenced leaves, recomputes the root from the tiles, and replaces the
checkpoint with a compare-and-swap on (size, root). A lost race changes
nothing, and every signed checkpoint extends the previous one, because the
tree is always recomputed from the same append-only entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func, select, tuple_, update

from cleanroom.ledger import proofs, schema
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.errors import ConflictError, NotFoundError, RangeError, TileError
from cleanroom.ledger.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash
from cleanroom.ledger.note import Signer, Verifier, open_note, parse_note, sign_note
from cleanroom.ledger.search import Query, counts_by_type, index_entries, indexed_upto, search
from cleanroom.ledger.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    FullTileCache,
    TileHashReader,
    TileRef,
    encode_bundle,
    extend_tiles,
    tile_width_for,
)
from cleanroom.storage import Database, migrate

# a write stored in the transaction that sequences an entry (what the entry
# commits to: both are stored, or neither)
Also = Callable[[Connection], None]


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and its signed note."""

    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


_TILE_QUERY = select(schema.tiles.c.data).where(
    schema.tiles.c.level == bindparam("level"), schema.tiles.c.idx == bindparam("idx")
)


_LATEST_NOTE = select(schema.checkpoints.c.note).join_from(
    schema.checkpoint, schema.checkpoints, schema.checkpoint.c.size == schema.checkpoints.c.size
)


def _signed(note: str) -> SignedCheckpoint:
    return SignedCheckpoint(parse_checkpoint(parse_note(note).text), note)


def _as_bytes(value: bytes | memoryview | str) -> bytes:
    """Stored bodies are bytes; a row altered by hand may come back as text."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _now() -> datetime:
    return datetime.now(UTC)


class LedgerStore:
    """Entries, tiles and checkpoints of one log in one database."""

    def __init__(self, db: Database, origin: str, signer: Signer) -> None:
        self.db = db
        self.origin = origin
        self.signer = signer
        self.verifier: Verifier = signer.verifier
        self.full_tiles = FullTileCache()
        # The largest checkpoint size seen; checkpoints only grow, so any size up to
        # this one is known to be signed without asking the database again.
        self.known_size = 0

    # ------------------------------------------------------------------ setup

    def init(self) -> SignedCheckpoint:
        """Create tables if needed and sign the empty tree on first use."""
        migrate(self.db, schema.MIGRATIONS)
        with self.db.write() as conn:
            if conn.execute(select(schema.state.c.id)).first() is None:
                conn.execute(schema.state.insert().values(id=1, next_index=0))
            note = conn.execute(_LATEST_NOTE).scalar_one_or_none()
            if note is None:
                signed = self._sign(Checkpoint(self.origin, 0, EMPTY_ROOT))
                conn.execute(
                    schema.checkpoint.insert().values(
                        id=1, size=0, root=EMPTY_ROOT, updated_at=_now()
                    )
                )
                conn.execute(
                    schema.checkpoints.insert().values(
                        size=0, root=EMPTY_ROOT, note=signed.note, signed_at=_now()
                    )
                )
            else:
                existing = _signed(note).checkpoint
                if existing.origin != self.origin:
                    raise ConflictError(
                        f"this database holds the log {existing.origin!r}, not {self.origin!r}"
                    )
                open_note(note, [self.verifier])
        return self.latest()

    def _sign(self, cp: Checkpoint) -> SignedCheckpoint:
        return SignedCheckpoint(cp, sign_note(cp.text(), [self.signer]))

    # ------------------------------------------------------------------ sequencing

    def sequence(self, bodies: list[bytes], also: Sequence[Also] = ()) -> int:
        """Durably store ``bodies`` under consecutive indices, and run the writes
        ``also`` in the same transaction (what an entry commits to, stored with
        it: both or neither); returns the first index."""
        if not bodies:
            raise RangeError("nothing to append")
        rows = [(b, leaf_hash(b)) for b in bodies]
        with self.db.write() as conn:
            first = self._sequence(conn, rows)
            for write in also:
                write(conn)
            return first

    def _sequence(self, conn: Connection, rows: list[tuple[bytes, bytes]]) -> int:
        n = len(rows)
        end = conn.execute(
            update(schema.state)
            .where(schema.state.c.id == 1)
            .values(next_index=schema.state.c.next_index + n)
            .returning(schema.state.c.next_index)
        ).scalar_one()
        first = end - n
        conn.execute(
            schema.entries.insert(),
            [{"idx": first + i, "body": b, "leaf_hash": h} for i, (b, h) in enumerate(rows)],
        )
        return first

    def sequenced_size(self) -> int:
        with self.db.read() as conn:
            return conn.execute(select(schema.state.c.next_index)).scalar_one()

    # ------------------------------------------------------------------ integration

    def integrate(self, max_leaves: int = 1 << 16) -> SignedCheckpoint | None:
        """Fold newly sequenced entries into the tree and sign a new checkpoint.

        Returns the new checkpoint, or None when there was nothing to integrate.
        """
        with self.db.write() as conn:
            q = select(schema.checkpoint.c.size, schema.checkpoint.c.root).where(
                schema.checkpoint.c.id == 1
            )
            if not self.db.is_sqlite:
                q = q.with_for_update()
            old_size, old_root = conn.execute(q).one()
            next_index = conn.execute(select(schema.state.c.next_index)).scalar_one()
            if next_index <= old_size:
                return None
            end = min(next_index, old_size + max_leaves)
            hashes = list(
                conn.execute(
                    select(schema.entries.c.leaf_hash)
                    .where(schema.entries.c.idx >= old_size, schema.entries.c.idx < end)
                    .order_by(schema.entries.c.idx)
                ).scalars()
            )
            if len(hashes) != end - old_size:
                raise ConflictError(
                    f"entries {old_size}..{end} are not all stored; the log is damaged"
                )
            changed = extend_tiles(
                old_size, hashes, lambda lvl, idx: self._tile_data(conn, lvl, idx)
            )
            self._write_tiles(conn, changed)
            new_root = proofs.range_hash(self._reader(conn, end, changed).node, 0, end)
            signed = self._sign(Checkpoint(self.origin, end, new_root))
            result = conn.execute(
                update(schema.checkpoint)
                .where(
                    schema.checkpoint.c.id == 1,
                    schema.checkpoint.c.size == old_size,
                    schema.checkpoint.c.root == old_root,
                )
                .values(size=end, root=new_root, updated_at=_now())
            )
            if result.rowcount != 1:
                raise ConflictError("checkpoint changed during integration; retry")
            conn.execute(
                schema.checkpoints.insert().values(
                    size=end, root=new_root, note=signed.note, signed_at=_now()
                )
            )
            return signed

    def _tile_data(self, conn: Connection, level: int, index: int) -> bytes:
        data = conn.execute(_TILE_QUERY, {"level": level, "idx": index}).scalar_one_or_none()
        return bytes(data) if data is not None else b""

    def _write_tiles(self, conn: Connection, changed: dict[tuple[int, int], bytes]) -> None:
        rows = [{"level": lv, "idx": ix, "data": d} for (lv, ix), d in changed.items()]
        self.db.upsert(conn, schema.tiles, ["level", "idx"], rows)

    # ------------------------------------------------------------------ reading

    def latest(self) -> SignedCheckpoint:
        with self.db.read() as conn:
            note = conn.execute(_LATEST_NOTE).scalar_one_or_none()
        if note is None:
            raise NotFoundError("the log has no checkpoint yet", hint="run `cleanroom init`")
        signed = _signed(note)
        self.known_size = max(self.known_size, signed.size)
        return signed

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        """A checkpoint signed earlier at exactly ``size`` (with its cosignatures)."""
        with self.db.read() as conn:
            note = conn.execute(
                select(schema.checkpoints.c.note).where(schema.checkpoints.c.size == size)
            ).scalar_one_or_none()
        if note is None:
            raise NotFoundError(f"no checkpoint was signed at size {size}")
        return _signed(note)

    def signed_history(self) -> list[SignedCheckpoint]:
        with self.db.read() as conn:
            notes = conn.execute(
                select(schema.checkpoints.c.note).order_by(schema.checkpoints.c.size)
            ).scalars()
            return [_signed(n) for n in notes]

    def entry(self, index: int) -> bytes:
        if index < 0:
            raise RangeError("entry index cannot be negative")
        with self.db.read() as conn:
            body = conn.execute(
                select(schema.entries.c.body).where(schema.entries.c.idx == index)
            ).scalar_one_or_none()
        if body is None:
            raise NotFoundError(f"no entry at index {index}")
        return _as_bytes(body)

    def missing_below(self, size: int) -> str:
        """Why the stored entries do not reach the first ``size`` (a signed
        checkpoint's), or "" when they do: the tail deleted or the database
        rolled back under the log. Two lookups on the index, cheap enough for
        every health check; a hole inside is the monitor's to find (it re-reads
        what it verified)."""
        if size == 0:
            return ""
        with self.db.read() as conn:
            low, top = conn.execute(
                select(func.min(schema.entries.c.idx), func.max(schema.entries.c.idx)).where(
                    schema.entries.c.idx < size
                )
            ).one()
        if (low, top) == (0, size - 1):
            return ""
        return (
            f"the log signed {size:,} entries but stores indices {low if low is not None else '-'}"
            f" to {top if top is not None else '-'}: entries were deleted or the database was "
            "rolled back"
        )

    def entries(
        self, start: int = 0, end: int | None = None, *, chunk: int = 10_000
    ) -> Iterator[tuple[int, bytes]]:
        """Sequenced entries ``start`` to ``end`` (exclusive; all if None) with
        their indices, read in chunks rather than one query per entry."""
        stop = self.sequenced_size() if end is None else end
        for lo in range(max(0, start), stop, chunk):
            with self.db.read() as conn:
                rows = conn.execute(
                    select(schema.entries.c.idx, schema.entries.c.body)
                    .where(schema.entries.c.idx >= lo, schema.entries.c.idx < min(lo + chunk, stop))
                    .order_by(schema.entries.c.idx)
                ).all()
            for idx, body in rows:
                yield int(idx), _as_bytes(body)

    def search(self, query: Query) -> tuple[SignedCheckpoint, list[tuple[int, bytes]]]:
        """The latest checkpoint and the entries it covers that match ``query``
        (newest first): only entries a visitor can prove are in the log."""
        cp = self.latest()
        self.index_upto(cp.size)
        with self.db.read() as conn:
            found = search(conn, query, cp.size)
            if not found:
                return cp, []
            rows = conn.execute(
                select(schema.entries.c.idx, schema.entries.c.body).where(
                    schema.entries.c.idx.in_(found)
                )
            ).all()
        bodies = {int(i): _as_bytes(b) for i, b in rows}
        return cp, [(i, bodies[i]) for i in found]

    def counts_by_type(self) -> tuple[SignedCheckpoint, dict[str, int]]:
        """The latest checkpoint and how many entries of each type it covers."""
        cp = self.latest()
        self.index_upto(cp.size)
        with self.db.read() as conn:
            return cp, counts_by_type(conn, cp.size)

    def index_upto(self, size: int, chunk: int = 10_000) -> None:
        """Bring the search index up to entry ``size`` (``ledger/search.py``):
        the searches pay for it, a chunk a transaction, not the appends."""
        with self.db.read_latest() as conn:
            if indexed_upto(conn) >= size:
                return
        while True:
            with self.db.write() as conn:
                upto = indexed_upto(conn, lock=not self.db.is_sqlite)
                if upto >= size:  # (another process got there first)
                    return
                end = min(size, upto + chunk)
                rows = conn.execute(
                    select(schema.entries.c.idx, schema.entries.c.body)
                    .where(schema.entries.c.idx >= upto, schema.entries.c.idx < end)
                    .order_by(schema.entries.c.idx)
                ).all()
                index_entries(conn, upto, end, [(int(i), _as_bytes(b)) for i, b in rows])

    def bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """Entry bundle ``index`` at ``width`` entries, if a signed checkpoint covers it."""
        start = index * TILE_WIDTH
        with self.db.read_latest() as conn:
            size = self._signed_size(conn, None)
            if tile_width_for(0, index, size) < width:
                raise NotFoundError(f"entry bundle {index} of width {width} is beyond size {size}")
            bodies = [
                _as_bytes(b)
                for b in conn.execute(
                    select(schema.entries.c.body)
                    .where(schema.entries.c.idx >= start, schema.entries.c.idx < start + width)
                    .order_by(schema.entries.c.idx)
                ).scalars()
            ]
        if len(bodies) != width:
            raise NotFoundError(f"entry bundle {index} is incomplete in storage")
        return encode_bundle(bodies)

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """Hash tile (level, index) at ``width`` hashes, if a signed checkpoint covers it."""
        with self.db.read_latest() as conn:
            size = self._signed_size(conn, None)
            if tile_width_for(level, index, size) < width:
                raise NotFoundError(f"tile {level}/{index} of width {width} is beyond size {size}")
            return self._reader(conn, size).fetch(TileRef(level, index, width))

    def _signed_size(self, conn: Connection, size: int | None) -> int:
        """The latest signed size — from memory when ``size`` is known to be covered.

        Checkpoints only grow, so a size at or below one seen before needs no query.
        """
        if size is not None and 0 <= size <= self.known_size:
            return self.known_size
        latest = conn.execute(select(schema.checkpoint.c.size)).scalar_one()
        self.known_size = max(self.known_size, latest)
        return latest

    def _reader(
        self,
        conn: Connection,
        size: int,
        prefetched: dict[tuple[int, int], bytes] | None = None,
    ) -> TileHashReader:
        """Node hashes of the tree at ``size`` from stored tiles (``prefetched`` first)."""

        def fetch(ref: TileRef) -> bytes:
            data = (prefetched or {}).get((ref.level, ref.index))
            if data is None:
                data = self._tile_data(conn, ref.level, ref.index)
            if len(data) < ref.width * HASH_SIZE:
                raise TileError(f"stored tile {ref.level}/{ref.index} is shorter than the tree")
            return data[: ref.width * HASH_SIZE]

        return TileHashReader(fetch, size, self.full_tiles)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self._prove(lambda node, n: proofs.inclusion_proof(node, index, n), size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return self._prove(lambda node, n: proofs.consistency_proof(node, size1, n), size2)

    def _prove(
        self, build: Callable[[proofs.NodeFn, int], list[bytes]], size: int | None
    ) -> list[bytes]:
        """Build a proof reading all its tiles in one query and one transaction.

        Which nodes a proof needs depends only on the index and sizes, so a dry
        run with placeholder hashes finds the tiles; one round trip fetches those
        not already in the full-tile cache; the real run then reads no more.
        (On SQLite, where a query is a function call, tiles are read as needed.)
        """
        # Tiles only grow and a checkpoint only moves forward, so statements need
        # no common snapshot: a tile read after the size is at least as long.
        with self.db.read_latest() as conn:
            latest = self._signed_size(conn, size)
            size = latest if size is None else size
            if not 0 <= size <= latest:
                raise RangeError(f"size {size} is beyond the latest checkpoint ({latest})")
            wanted: set[tuple[int, int]] = set()

            def plan(level: int, index: int) -> bytes:
                if (index + 1) << level > size:
                    raise RangeError(f"node ({level}, {index}) is not complete at size {size}")
                tile_level, r = divmod(level, TILE_HEIGHT)
                key = (tile_level, (index << r) >> TILE_HEIGHT)
                full = tile_width_for(key[0], key[1], size) == TILE_WIDTH
                if not (full and self.full_tiles.get(key) is not None):
                    wanted.add(key)
                return bytes(HASH_SIZE)

            fetched: dict[tuple[int, int], bytes] = {}
            if not self.db.is_sqlite:  # in-process SQLite has no round trips to save
                build(plan, size)
            if wanted:
                rows = conn.execute(
                    select(schema.tiles.c.level, schema.tiles.c.idx, schema.tiles.c.data).where(
                        tuple_(schema.tiles.c.level, schema.tiles.c.idx).in_(sorted(wanted))
                    )
                )
                fetched = {(lv, ix): bytes(d) for lv, ix, d in rows}
            return build(self._reader(conn, size, fetched).node, size)

    # ------------------------------------------------------------------ cosignatures

    def add_cosignatures(self, size: int, root: bytes, lines: str) -> bool:
        """Attach verified cosignature lines to the signed checkpoint at (size, root)."""
        cp = schema.checkpoints
        with self.db.write() as conn:
            note = conn.execute(
                select(cp.c.note).where(cp.c.size == size, cp.c.root == root)
            ).scalar_one_or_none()
            if note is None:
                return False
            new_lines = [ln + "\n" for ln in lines.splitlines() if ln and ln not in note]
            if not new_lines:
                return False
            conn.execute(update(cp).where(cp.c.size == size).values(note=note + "".join(new_lines)))
        return True

    def witness_size(self, witness: str) -> int:
        with self.db.read() as conn:
            v = conn.execute(
                select(schema.witness_progress.c.size).where(
                    schema.witness_progress.c.witness == witness
                )
            ).scalar_one_or_none()
        return v or 0

    def set_witness_size(self, witness: str, size: int) -> None:
        with self.db.write() as conn:
            self.db.upsert(
                conn, schema.witness_progress, ["witness"], [{"witness": witness, "size": size}]
            )
