"""Every RFC 9162 proof vector (transparency-dev/merkle testdata) passes or is rejected."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cleanroom.ledger import proofs
from cleanroom.ledger.errors import ProofError

VECTORS = Path(__file__).parent.parent / "data" / "rfc9162"


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _h(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(case: dict) -> list[bytes]:
    return [_h(p) for p in case.get("proof") or []]


def _run(kind: str, case: dict) -> None:
    if kind == "inclusion":
        proofs.verify_inclusion(
            _h(case["leafHash"]), case["leafIdx"], case["treeSize"], _proof(case), _h(case["root"])
        )
    elif kind == "consistency":
        proofs.verify_consistency(
            case["size1"], case["size2"], _proof(case), _h(case["root1"]), _h(case["root2"])
        )
    elif kind == "subtreeinclusion":
        proofs.verify_subtree_inclusion(
            _h(case["leafHash"]),
            case["leafIdx"],
            case["start"],
            case["end"],
            _proof(case),
            _h(case["root"]),
        )
    else:
        proofs.verify_subtree_consistency(
            case["start"],
            case["end"],
            case["size"],
            _proof(case),
            _h(case["root1"]),
            _h(case["root2"]),
        )


ALL = [
    (kind, path)
    for kind in ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")
    for path in _cases(kind)
]


def test_all_vector_files_are_present() -> None:
    assert len(ALL) == 518


@pytest.mark.parametrize(("kind", "path"), ALL, ids=[str(p.relative_to(VECTORS)) for _, p in ALL])
def test_vector(kind: str, path: Path) -> None:
    case = json.loads(path.read_text())
    if case["wantErr"]:
        with pytest.raises(ProofError):
            _run(kind, case)
    else:
        _run(kind, case)
