"""C2SP tlog-tiles: tile and entry-bundle paths, bundle encoding, and reading node
hashes out of tiles.

A tile at level ``L`` index ``N`` holds up to 256 consecutive hashes at tree
level ``8 * L``; a full tile is 8,192 bytes, a partial one is served as
``.p/<W>``. Entry bundles hold the entries of one level-0 tile, each prefixed by
its big-endian uint16 length.
"""

from __future__ import annotations

import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cleanroom.ledger.errors import RangeError, TileError
from cleanroom.ledger.hashing import HASH_SIZE, node_hash, perfect_root

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE

_N_RE = re.compile(r"^(x[0-9]{3}/)*[0-9]{3}$")


@dataclass(frozen=True)
class TileRef:
    """One tile (``level`` 0..63) or entry bundle (``level`` = -1) and its width."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level < 0

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        """The path below the log prefix, e.g. ``tile/0/x001/234.p/7``."""
        head = "tile/entries" if self.is_bundle else f"tile/{self.level}"
        tail = f".p/{self.width}" if self.is_partial else ""
        return f"{head}/{encode_index(self.index)}{tail}"


def encode_index(n: int) -> str:
    """Tile index as zero-padded 3-digit path elements, all but the last prefixed 'x'."""
    if n < 0:
        raise TileError("tile index cannot be negative")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def parse_tile_path(path: str) -> TileRef:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
    if not path.startswith("tile/"):
        raise TileError(f"{path!r} is not a tile path")
    rest = path[len("tile/") :]
    level_s, sep, rest = rest.partition("/")
    if not sep:
        raise TileError(f"{path!r} has no tile index")
    if level_s == "entries":
        level = -1
    elif re.fullmatch(r"0|[1-9][0-9]?", level_s) and int(level_s) <= 63:
        level = int(level_s)
    else:
        raise TileError(f"tile level {level_s!r} must be 0..63 without leading zeros")
    width = TILE_WIDTH
    if ".p/" in rest:
        rest, _, w = rest.partition(".p/")
        if not re.fullmatch(r"[1-9][0-9]{0,2}", w) or int(w) > 255:
            raise TileError(f"partial tile width {w!r} must be 1..255")
        width = int(w)
    if not _N_RE.match(rest):
        raise TileError(f"tile index {rest!r} is not in x000/000 form")
    parts = rest.split("/")
    index = 0
    for part in parts:
        index = index * 1000 + int(part.lstrip("x"))
    if encode_index(index) != rest:
        raise TileError(f"tile index {rest!r} has extra leading zero elements")
    return TileRef(level, index, width)


def tile_width_for(level: int, index: int, tree_size: int) -> int:
    """Width of tile (level, index) in a tree of ``tree_size``; 0 if it does not exist."""
    count = tree_size >> (TILE_HEIGHT * level)  # hashes at this level
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def tiles_for_size(tree_size: int) -> list[TileRef]:
    """Every tile a tree of ``tree_size`` consists of (partial ones at their width)."""
    out: list[TileRef] = []
    level = 0
    while (count := tree_size >> (TILE_HEIGHT * level)) > 0:
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            out.append(TileRef(level, n, tile_width_for(level, n, tree_size)))
        level += 1
    return out


def encode_bundle(entries: list[bytes]) -> bytes:
    """An entry bundle: each entry prefixed with its uint16 big-endian length."""
    out = bytearray()
    for e in entries:
        if len(e) > 0xFFFF:
            raise TileError(f"entry of {len(e)} bytes does not fit a bundle's uint16 length")
        out += struct.pack(">H", len(e))
        out += e
    return bytes(out)


def decode_bundle(data: bytes, expect: int | None = None) -> list[bytes]:
    """Split an entry bundle; checks it has ``expect`` entries and no trailing bytes."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        (n,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + n > len(data):
            raise TileError("entry bundle ends inside an entry")
        entries.append(data[pos : pos + n])
        pos += n
        if len(entries) > TILE_WIDTH:
            raise TileError("entry bundle holds more than 256 entries")
    if expect is not None and len(entries) != expect:
        raise TileError(f"entry bundle holds {len(entries)} entries, expected {expect}")
    return entries


def split_hashes(data: bytes, width: int) -> list[bytes]:
    """Split tile data into hashes; checks the length matches the width."""
    if len(data) != width * HASH_SIZE:
        raise TileError(f"tile has {len(data)} bytes, expected {width * HASH_SIZE}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


TileFetch = Callable[[TileRef], bytes]


class FullTileCache:
    """A bounded, thread-safe LRU of full tiles with all their inner levels hashed.

    Full tiles never change, so caching them is always safe; the bound keeps the
    server from ever holding the whole tree.
    """

    def __init__(self, max_tiles: int = 512) -> None:
        self.max_tiles = max_tiles
        self._data: OrderedDict[tuple[int, int], list[list[bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> list[list[bytes]] | None:
        with self._lock:
            levels = self._data.get(key)
            if levels is not None:
                self._data.move_to_end(key)
            return levels

    def put(self, key: tuple[int, int], levels: list[list[bytes]]) -> None:
        with self._lock:
            self._data[key] = levels
            self._data.move_to_end(key)
            while len(self._data) > self.max_tiles:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def _inner_levels(hashes: list[bytes]) -> list[list[bytes]]:
    levels = [hashes]
    while len(levels[-1]) > 1:
        row = levels[-1]
        levels.append([node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)])
    return levels


class TileHashReader:
    """Perfect node hashes of a tree of ``size``, read from its tiles.

    ``fetch(ref)`` returns the tile data at exactly ``ref.width`` hashes (from a
    database, a directory or HTTP). Tiles fetched are kept for the reader's
    lifetime, so a proof touches each tile once; full tiles can also be shared
    across readers through a :class:`FullTileCache`.
    """

    def __init__(self, fetch: TileFetch, size: int, cache: FullTileCache | None = None) -> None:
        self.fetch = fetch
        self.size = size
        self._cache: dict[tuple[int, int], list[bytes]] = {}
        self._full = cache

    def tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        hashes = self._cache.get(key)
        if hashes is None:
            width = tile_width_for(level, index, self.size)
            if width == 0:
                raise RangeError(f"tile {level}/{index} is beyond tree size {self.size}")
            hashes = split_hashes(self.fetch(TileRef(level, index, width)), width)
            self._cache[key] = hashes
        return hashes

    def node(self, level: int, index: int) -> bytes:
        """Hash of the perfect node covering leaves [index << level, (index+1) << level)."""
        if (index + 1) << level > self.size:
            raise RangeError(f"node ({level}, {index}) is not complete at size {self.size}")
        tile_level, r = divmod(level, TILE_HEIGHT)
        first = index << r  # position at tree level 8 * tile_level
        tile_index = first >> TILE_HEIGHT
        offset = first & (TILE_WIDTH - 1)
        if self._full is not None and tile_width_for(tile_level, tile_index, self.size) == (
            TILE_WIDTH
        ):
            key = (tile_level, tile_index)
            levels = self._full.get(key)
            if levels is None:
                levels = _inner_levels(self.tile(tile_level, tile_index))
                self._full.put(key, levels)
            return levels[r][offset >> r]
        hashes = self.tile(tile_level, tile_index)
        return perfect_root(hashes[offset : offset + (1 << r)])


def extend_tiles(
    size: int, new_hashes: list[bytes], read_tile: Callable[[int, int], bytes]
) -> dict[tuple[int, int], bytes]:
    """Tiles changed by appending ``new_hashes`` (leaf hashes) to a tree of ``size``.

    ``read_tile(level, index)`` returns the stored data of the current right-edge
    partial tile at that position (only called where one exists). Returns
    ``{(level, index): data}`` for every tile that changed or appeared; a tile
    that becomes full contributes its root to the level above.
    """
    changed: dict[tuple[int, int], bytes] = {}
    additions = new_hashes
    level = 0
    while additions:
        count = size >> (TILE_HEIGHT * level)
        index, offset = divmod(count, TILE_WIDTH)
        current = read_tile(level, index) if offset else b""
        if len(current) != offset * HASH_SIZE:
            raise TileError(
                f"stored tile {level}/{index} has {len(current) // HASH_SIZE} hashes, "
                f"expected {offset}"
            )
        buf = current + b"".join(additions)
        completed: list[bytes] = []
        for start in range(0, len(buf), FULL_TILE_BYTES):
            chunk = buf[start : start + FULL_TILE_BYTES]
            changed[(level, index + start // FULL_TILE_BYTES)] = chunk
            if len(chunk) == FULL_TILE_BYTES:
                completed.append(perfect_root(split_hashes(chunk, TILE_WIDTH)))
        additions = completed
        level += 1
    return changed
