"""The dependency table of docs/architecture.md, as code: every import in
src/ (module level and inside functions, read with ast) must be one the table
allows. Imports that break it today are listed below, each with its file; a
new one fails, and so does a listed one that is gone (the list only shrinks)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "cleanroom"

# top-level modules and packages of src/cleanroom, by part
PARTS = {
    "errors": "errors", "storage": "storage", "ledger": "ledger", "vault": "vault",
    "screen": "screen", "foryou": "foryou", "gate": "gate", "release": "release",
    "audit": "audit", "oversight": "oversight", "cli_oversight": "oversight",
    "room": "room", "config": "room", "deployment": "room", "recommender": "room",
    "datasets": "room", "servers": "room", "client": "room",
    "api": "api",
    "cli": "cli", "cli_release": "cli", "cli_screen": "cli", "cli_audit": "cli",
    "demo": "demo",
}  # fmt: skip
BASE = {"storage", "errors"}
PARTS_BELOW_ROOM = {"errors", "storage", "ledger", "vault", "screen", "foryou", "gate",
                    "release", "audit", "oversight"}  # fmt: skip
ALLOWED = {
    "errors": set(),
    "storage": {"errors"},
    "ledger": BASE,
    "vault": BASE,
    "screen": BASE,
    "foryou": BASE,
    "gate": {"vault", "ledger", "screen"} | BASE,
    "release": {"ledger"} | BASE,
    "audit": {"ledger"} | BASE,
    "oversight": {"ledger"} | BASE,
    "room": PARTS_BELOW_ROOM,
    "api": PARTS_BELOW_ROOM | {"room"},
    "cli": PARTS_BELOW_ROOM | {"room", "api"},
    "demo": set(PARTS.values()),
}
# (file, imported part) that break the table today: fix, then remove the line
KNOWN = {
    ("audit/accounts.py", "room"),
    ("audit/accounts.py", "gate"),
    ("audit/puppets.py", "room"),
    ("audit/report.py", "room"),
    ("audit/report.py", "oversight"),
    ("cli.py", "demo"),
}


def _part_of(path: Path) -> str:
    first = path.relative_to(SRC).parts[0].removesuffix(".py")
    return PARTS.get(first, first)


def _imported_parts(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "cleanroom":  # from cleanroom import x (a part, or __version__)
                names = [f"cleanroom.{a.name}" for a in node.names if a.name in PARTS]
        for name in names:
            parts = name.split(".")
            if parts[0] == "cleanroom" and len(parts) > 1:
                out.append((PARTS.get(parts[1], parts[1]), node.lineno))
    return out


def violations() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SRC:
            continue
        part = _part_of(path)
        rel = path.relative_to(SRC).as_posix()
        for imported, line in _imported_parts(ast.parse(path.read_text(), str(path))):
            if imported != part and imported not in ALLOWED.get(part, set()):
                found.setdefault((rel, imported), []).append(line)
    return found


def test_every_module_belongs_to_a_part() -> None:
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.glob("*")}
    unknown = tops - set(PARTS) - {"__init__", "__pycache__", "data", "py.typed"}
    assert unknown == set(), f"add these to PARTS and docs/architecture.md: {sorted(unknown)}"


def test_imports_follow_the_architecture_table() -> None:
    found = violations()
    new = [f"src/cleanroom/{f}:{lines[0]} imports {p} (a {_part_of(SRC / f)} module may not)"
           for (f, p), lines in sorted(found.items()) if (f, p) not in KNOWN]  # fmt: skip
    assert new == [], "\n".join(new)
    gone = sorted(KNOWN - set(found))
    assert gone == [], f"fixed: remove these from KNOWN: {gone}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """A ledger module importing the gate is what the test exists to refuse."""
    tree = ast.parse("def f():\n    from cleanroom.gate import Gate\n")
    [(imported, line)] = _imported_parts(tree)
    assert (imported, line) == ("gate", 2) and imported not in ALLOWED["ledger"]
