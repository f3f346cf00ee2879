"""Canonical entries (RFC 8785), commitments, tile paths, bundles and tile growth."""

from __future__ import annotations

import os

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.ledger import MemoryTree, commitment, encode_entry, parse_entry_json
from cleanroom.ledger.entries import MAX_ENTRY_BYTES, canonical_json, decode_entry
from cleanroom.ledger.errors import EntryError, TileError
from cleanroom.ledger.hashing import leaf_hash
from cleanroom.ledger.tiles import (
    TileHashReader,
    decode_bundle,
    encode_bundle,
    encode_index,
    extend_tiles,
    parse_tile_path,
    tiles_for_size,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_matches_rfc8785(value: object) -> None:
    try:
        want = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(EntryError):
            canonical_json(value)
        return
    assert canonical_json(value) == want


def test_entry_validation() -> None:
    body = encode_entry({"v": 1, "type": "access.decision", "z": [1, "é"], "a": None})
    assert body == b'{"a":null,"type":"access.decision","v":1,"z":[1,"\xc3\xa9"]}'
    assert decode_entry(body)["type"] == "access.decision"
    assert parse_entry_json('{ "type": "x", "v": 2 }') == b'{"type":"x","v":2}'
    for bad in [
        [],
        {"v": 1},
        {"type": "Bad Type", "v": 1},
        {"type": "x", "v": 0},
        {"type": "x", "v": "1"},
        {"type": "x", "v": True},
    ]:
        with pytest.raises(EntryError):
            encode_entry(bad)  # type: ignore[arg-type]
    with pytest.raises(EntryError):
        encode_entry({"type": "x", "v": 1, "pad": "x" * MAX_ENTRY_BYTES})
    with pytest.raises(EntryError):
        parse_entry_json("{not json")
    with pytest.raises(EntryError):
        decode_entry(b'{"v":1, "type":"x"}')  # not canonical


def test_commitments_are_salted_and_stable() -> None:
    salt = os.urandom(32)
    a = commitment(salt, "user-1")
    assert a == commitment(salt, "user-1") and a.startswith("c1:")
    assert a != commitment(os.urandom(32), "user-1")
    assert "user-1" not in a
    with pytest.raises(EntryError):
        commitment(b"short", "user-1")


def test_tile_paths_follow_tlog_tiles() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert parse_tile_path("tile/0/x001/x234/067").index == 1234067
    ref = parse_tile_path("tile/entries/x001/000.p/7")
    assert (ref.is_bundle, ref.index, ref.width) == (True, 1000, 7)
    assert ref.path() == "tile/entries/x001/000.p/7"
    for bad in [
        "tile/64/000",
        "tile/01/000",
        "tile/0/1",
        "tile/0/x001",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/x000/001",
        "tile/0/000.p/07",
        "tiles/0/000",
        "tile/0/0001",
        "tile/-1/000",
    ]:
        with pytest.raises(TileError):
            parse_tile_path(bad)
    sizes = tiles_for_size(70_000)
    assert sum(1 for t in sizes if t.level == 0 and not t.is_partial) == 273
    assert [t.path() for t in sizes if t.is_partial] == [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ]


def test_bundles_roundtrip_and_reject_garbage() -> None:
    entries = [b"", b"a", os.urandom(300)]
    data = encode_bundle(entries)
    assert decode_bundle(data, 3) == entries
    with pytest.raises(TileError):
        decode_bundle(data[:-1])
    with pytest.raises(TileError):
        decode_bundle(data, 2)
    with pytest.raises(TileError):
        encode_bundle([b"x" * 70_000])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=6))
def test_extending_tiles_matches_the_memory_tree(batches: list[int]) -> None:
    stored: dict[tuple[int, int], bytes] = {}
    tree = MemoryTree()
    size = 0
    for n in batches:
        hashes = [leaf_hash(f"{size + i}".encode()) for i in range(n)]
        stored.update(extend_tiles(size, hashes, lambda lv, ix: stored[(lv, ix)]))
        for h in hashes:
            tree.append_hash(h)
        size += n
        reader = TileHashReader(lambda ref: stored[(ref.level, ref.index)][: ref.width * 32], size)
        from cleanroom.ledger.proofs import range_hash

        assert range_hash(reader.node, 0, size) == tree.root()
