"""The ledger stays importable on its own: the oversight body runs it elsewhere."""

from __future__ import annotations

import subprocess
import sys


def _loaded(imports: str) -> list[str]:
    code = (
        f"import sys, {imports}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('cleanroom')))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def _strays(modules: list[str], allowed: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m != "cleanroom" and not m.startswith(allowed)]


def test_ledger_imports_nothing_but_storage() -> None:
    out = _loaded(
        "cleanroom.ledger, cleanroom.ledger.client, cleanroom.ledger.witness, "
        "cleanroom.ledger.log, cleanroom.ledger.tlogproof"
    )
    assert _strays(out, ("cleanroom.ledger", "cleanroom.storage", "cleanroom.errors")) == []


def test_vault_imports_nothing_but_storage() -> None:
    """DESIGN: the vault depends on storage only; the gate wraps it, not the reverse."""
    out = _loaded("cleanroom.vault, cleanroom.vault.store")
    assert _strays(out, ("cleanroom.vault", "cleanroom.storage", "cleanroom.errors")) == []


def test_foryou_engine_knows_nothing_of_vault_gate_or_ledger() -> None:
    """The engine gets events and videos handed to it (read through the gate by
    the clean room's recommender) and returns ledger entries to append: it is
    testable and replayable without any of them."""
    out = _loaded("cleanroom.foryou, cleanroom.foryou.evaluate")
    assert _strays(out, ("cleanroom.foryou", "cleanroom.storage", "cleanroom.errors")) == []


def test_release_depends_on_the_ledger_only() -> None:
    """DESIGN: releases (artifacts, reviews, attestations, the deploy check)
    stand on the ledger; an outside verifier needs nothing else."""
    out = _loaded("cleanroom.release")
    assert (
        _strays(
            out, ("cleanroom.release", "cleanroom.ledger", "cleanroom.storage", "cleanroom.errors")
        )
        == []
    )


def test_screen_depends_on_nothing_but_its_data() -> None:
    """DESIGN: lists, matcher, ownership rules and the manifest check are pure
    (the error base class lives in storage); recording is the gate's job."""
    out = _loaded(
        "cleanroom.screen.lists, cleanroom.screen.index, cleanroom.screen.screener, "
        "cleanroom.screen.infra, cleanroom.screen.ownership"
    )
    assert _strays(out, ("cleanroom.screen", "cleanroom.storage", "cleanroom.errors")) == []


def test_oversight_monitor_imports_nothing_of_the_clean_room_but_the_ledger() -> None:
    """The oversight body runs the monitor on its own machine."""
    out = _loaded("cleanroom.oversight, cleanroom.cli_oversight")
    allowed = ("cleanroom.oversight", "cleanroom.cli_oversight", "cleanroom.ledger",
               "cleanroom.storage", "cleanroom.errors")  # fmt: skip
    assert _strays(out, allowed) == []


def test_verifying_needs_no_database(tmp_path) -> None:
    """Proof and note verification run with no database URL anywhere."""
    from cleanroom.ledger import MemoryTree, generate_signer, open_note, sign_note
    from cleanroom.ledger.checkpoint import Checkpoint
    from cleanroom.ledger.proofs import verify_inclusion

    t = MemoryTree()
    for i in range(10):
        t.append(b"%d" % i)
    s = generate_signer("offline.example/log")
    note = sign_note(Checkpoint("offline.example/log", 10, t.root()).text(), [s])
    assert open_note(note, [s.verifier]).verified
    verify_inclusion(t.node(0, 3), 3, 10, t.inclusion_proof(3), t.root())
