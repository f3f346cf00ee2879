"""The rules of docs/architecture.md, as code. The table of which part may
import which is read from the document itself (so the two cannot drift);
every import in src/ — module level, inside a function, for type checking —
is read with ast and checked against it; each part is also imported in a fresh
interpreter to see that nothing outside its row gets loaded. Each failure
names the file and line."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "cleanroom"
DOC = ROOT / "docs" / "architecture.md"
TOP_LEVEL_MODULES = {"__init__.py", "errors.py"}


def allowed_table(text: str) -> dict[str, set[str]]:
    """part -> the parts it may import, from the table under "The parts and
    what each may import" (first column: the part; last: the parts it may
    import, backticked, or "nothing")."""
    section = text.split("## The parts and what each may import", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        part = cells[0].strip("`")
        table[part] = set(re.findall(r"`([a-z_]+)`", cells[-1]))
    return table


ALLOWED = allowed_table(DOC.read_text())


def part_of(path: Path, src: Path = SRC) -> str:
    return path.relative_to(src).parts[0].removesuffix(".py")


def imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every absolute import of a cleanroom module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return [(m, names, line) for m, names, line in out if m.split(".")[0] == "cleanroom"]


def imported_parts(module: str, names: list[str]) -> list[str]:
    """The parts an import reaches (``from cleanroom import x`` reaches part x)."""
    dotted = module.split(".")
    if len(dotted) > 1:
        return [dotted[1]]
    return [n for n in names if n in ALLOWED]  # from cleanroom import __version__: no part


def violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(p for p in src.rglob("*.py") if p != src / "__init__.py"):
        part = part_of(path, src)
        rel = path.relative_to(src.parent.parent).as_posix()
        for module, names, line in imports(ast.parse(path.read_text(), str(path))):
            for imported in imported_parts(module, names):
                if imported != part and imported not in ALLOWED.get(part, set()):
                    found.append(f"{rel}:{line}: {part} imports {imported} ({module})")
    return found


def test_the_table_names_every_part_and_only_parts() -> None:
    tops = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert set(ALLOWED) == tops | {"errors"}, "docs/architecture.md and src/ disagree"
    for part, allowed in ALLOWED.items():
        assert allowed <= set(ALLOWED), f"{part} may import unknown parts {allowed - set(ALLOWED)}"


def test_only_init_and_errors_at_the_top() -> None:
    loose = {p.name for p in SRC.glob("*.py")} - TOP_LEVEL_MODULES
    assert loose == set(), f"move these into a part: {sorted(loose)}"


def test_every_import_in_src_is_one_the_table_allows() -> None:
    found = violations()
    assert found == [], "\n".join(found)


def test_nothing_outside_the_demo_imports_it() -> None:
    assert not any("demo" in allowed for allowed in ALLOWED.values())
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("bench", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module, names, line in imports(ast.parse(path.read_text()))
        if "demo" in imported_parts(module, names)
    ]
    assert found == []


def test_no_private_name_is_imported_from_another_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}.{name}"
        for folder in ("src", "bench", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module, names, line in imports(ast.parse(path.read_text()))
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert found == [], "\n".join(found)


# the parts someone runs apart from the clean room (the oversight body's tools and
# what they stand on) or that must stay free of it; the assembly and what sits on
# top of it may load any part below, which the ast check above already holds
RUN_APART = sorted(part for part, allowed in ALLOWED.items() if "room" not in allowed)


@pytest.mark.parametrize("part", [p for p in RUN_APART if p not in ("errors", "room")])
def test_importing_a_part_loads_only_what_its_row_allows(part: str) -> None:
    """Each part imported on its own, every module of it, in a fresh interpreter."""
    names = [
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((SRC / part).rglob("*.py"))
        if p.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted({m.split('.')[1] for m in sys.modules"
        " if m.startswith('cleanroom.')})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(out.stdout.split()) - {part}
    assert loaded <= ALLOWED[part], f"importing {part} loads {sorted(loaded - ALLOWED[part])}"


def test_an_upward_import_is_refused_with_file_and_line(tmp_path: Path) -> None:
    """What the rule exists to refuse, added to a copy of src/: the ledger
    reaching up into the gate inside a function, the monitor into the clean
    room, the API into the CLI, the audit into the gate."""
    src = tmp_path / "src" / "cleanroom"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert violations(src) == []
    added = {
        "ledger/tree.py": "\n\ndef f():\n    from cleanroom.gate import Gate\n",
        "oversight/rules.py": "\nfrom cleanroom.room import CleanRoom\n",
        "api/pages.py": "\nimport cleanroom.cli.main\n",
        "audit/report.py": "\nfrom cleanroom import gate\n",
    }
    for name, text in added.items():
        with (src / name).open("a") as f:
            f.write(text)
    found = violations(src)
    lines = {name: len((src / name).read_text().splitlines()) for name in added}
    assert found == [
        f"src/cleanroom/api/pages.py:{lines['api/pages.py']}: api imports cli (cleanroom.cli.main)",
        f"src/cleanroom/audit/report.py:{lines['audit/report.py']}: audit imports gate (cleanroom)",
        f"src/cleanroom/ledger/tree.py:{lines['ledger/tree.py']}: ledger imports gate "
        "(cleanroom.gate)",
        f"src/cleanroom/oversight/rules.py:{lines['oversight/rules.py']}: oversight imports room "
        "(cleanroom.room)",
    ], found
    assert allowed_table("## The parts and what each may import\n| `x` | y | `ledger` |\n") == {
        "x": {"ledger"}
    }
