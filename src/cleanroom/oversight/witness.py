"""The monitor as a witness: the oversight body cosigns the log's checkpoints
(C2SP tlog-witness, only a checkpoint consistent with the last one it
cosigned) from the same state directory the monitor verifies in, and every
run checks that what its witness cosigned and what its monitor verified are
one history. A checkpoint its witness refused as inconsistent — a split view
the log tried to get cosigned — is a fork alert with both notes as evidence.

The key (``witness.key``, mode 0600) and the cosigned state
(``witness.db``, SQLite) live in the monitor's state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from cleanroom.ledger import proofs, witness_http
from cleanroom.ledger.checkpoint import parse_checkpoint
from cleanroom.ledger.client import Monitor
from cleanroom.ledger.errors import LedgerError, ProofError
from cleanroom.ledger.hashing import b64
from cleanroom.ledger.note import (
    ALG_COSIGNATURE_V1,
    Verifier,
    generate_signer,
    parse_note,
    parse_signer,
)
from cleanroom.ledger.serving import Served, serve_in_thread
from cleanroom.ledger.witness import Witness, origin_hash
from cleanroom.oversight.alerts import Alert
from cleanroom.storage import Database
from cleanroom.storage.secrets import read_secret, write_secret

KEY_FILE = "witness.key"


def init_key(state_dir: Path, name: str) -> Verifier:
    """Create the monitor's witness key (once); returns its verifier."""
    state_dir = Path(state_dir)
    path = state_dir / KEY_FILE
    if not path.exists():
        signer = generate_signer(name, ALG_COSIGNATURE_V1)  # checks the name first
        write_secret(path, signer.skey + "\n")
    return parse_signer(read_secret(path).strip()).verifier


def has_key(state_dir: Path) -> bool:
    return (Path(state_dir) / KEY_FILE).exists()


class MonitorWitness:
    """The witness in the monitor's state directory, trusting one log."""

    def __init__(self, state_dir: Path, origin: str, log_vkey: str) -> None:
        self.state_dir = Path(state_dir)
        if not has_key(self.state_dir):
            raise LedgerError(
                f"no witness key in {self.state_dir}",
                hint="run `cleanroom oversight witness-init --name NAME` first",
            )
        signer = parse_signer(read_secret(self.state_dir / KEY_FILE).strip())
        self.db = Database(f"sqlite:///{self.state_dir / 'witness.db'}")
        self.witness = Witness(self.db, signer)
        self.origin = origin
        if self.witness.logs().get(origin) != [log_vkey]:
            self.witness.trust_log(origin, [log_vkey])

    @property
    def verifier(self) -> Verifier:
        return self.witness.verifier

    def app(self) -> FastAPI:
        """The witness endpoint (``/witness/add-checkpoint``) as its own app."""
        app = FastAPI(title="Cleanroom oversight witness", docs_url=None, redoc_url=None)
        app.state.witness = self.witness
        app.include_router(witness_http.router())
        return app

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Served:
        """Serve the witness from a thread (port 0: a free one)."""
        return serve_in_thread(self.app(), host, port, name="oversight-witness")

    def cosigned(self) -> str | None:
        """The latest checkpoint note this witness cosigned."""
        return self.witness.latest(origin_hash(self.origin))

    def check(self, monitor: Monitor) -> list[Alert]:
        """Alerts for refused (inconsistent) submissions not reported yet, and
        for a cosigned checkpoint that the monitor's verified history
        contradicts."""
        out = self._refusals()
        state = monitor.load_state()
        note = self.cosigned()
        if state is None or note is None:
            return out
        cp = parse_checkpoint(parse_note(note).text)
        if cp.size > state.size or cp.size == 0:
            return out  # the log moved on since the monitor's run; checked next time
        try:
            if cp.size == state.size:
                if cp.root != state.root:
                    raise ProofError("same size, different roots")
            else:
                reader = monitor.tiles.reader(state.size)
                proof = proofs.consistency_proof(reader.node, cp.size, state.size)
                proofs.verify_consistency(cp.size, state.size, proof, cp.root, state.root)
        except (ProofError, LedgerError) as e:
            out.append(
                Alert(
                    "fork",
                    None,
                    f"the checkpoint this witness cosigned at size {cp.size} (root "
                    f"{b64(cp.root)}) is not in the history the monitor verified: {e}",
                    {"witness_cosigned": note, "monitor_verified": state.note},
                )
            )
        return out

    def _refusals(self) -> list[Alert]:
        out = []
        for ev in self.witness.evidence():
            if ev["origin"] != self.origin:
                continue
            # (the alert store keeps one alert per message: the time makes it this one)
            out.append(
                Alert(
                    "fork",
                    None,
                    f"the log asked this witness to cosign an inconsistent checkpoint at "
                    f"{ev['received_at']}: {ev['reason']}",
                    {"refused_request": ev["request"], "cosigned": self.cosigned()},
                )
            )
        return out

    def status(self) -> dict[str, Any]:
        note = self.cosigned()
        cp = parse_checkpoint(parse_note(note).text) if note else None
        return {
            "vkey": self.verifier.vkey,
            "origin": self.origin,
            "cosigned_size": cp.size if cp else 0,
            "refused": len([e for e in self.witness.evidence() if e["origin"] == self.origin]),
        }
