"""A witness per C2SP tlog-witness, and the log-side client that asks for cosignatures.

The witness keeps, per log origin, the latest checkpoint it cosigned. It
cosigns a new checkpoint only if the submitted old size matches that state and
the consistency proof from it verifies; the check and the update happen in one
locked transaction, so two concurrent requests can never roll the state back.
Validly signed but inconsistent submissions are kept as evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import Connection, Row, select, update

from cleanroom.ledger import proofs, schema
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.errors import (
    CheckpointError,
    LedgerError,
    NoteError,
    ProofError,
    SignatureError,
)
from cleanroom.ledger.hashing import EMPTY_ROOT, HASH_SIZE, b64, unb64
from cleanroom.ledger.note import (
    ALG_COSIGNATURE_V1,
    Note,
    Signature,
    Signer,
    Verifier,
    open_note,
    parse_note,
    parse_verifier,
)
from cleanroom.storage import Database, migrate

MAX_PROOF_LINES = 63


class WitnessError(LedgerError):
    """A refused add-checkpoint request; ``status`` is the HTTP status the spec requires."""

    def __init__(self, status: int, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = {
            400: "Bad add-checkpoint request",
            403: "Checkpoint signature not trusted",
            404: "Unknown log origin",
            409: "Old size does not match the witness state",
            422: "Checkpoint is not consistent",
        }.get(status, "Witness error")
        self.size = size  # for 409: the size the witness last cosigned


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A C2SP tlog-witness add-checkpoint request: old size, consistency proof, note."""

    old_size: int
    proof: list[bytes]
    note: str

    def encode(self) -> bytes:
        lines = [f"old {self.old_size}\n"] + [b64(p) + "\n" for p in self.proof]
        return ("".join(lines) + "\n" + self.note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body; malformed bodies raise a 400 WitnessError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError(400, "request body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise WitnessError(400, "request needs an empty line before the checkpoint")
    lines = head.split("\n")
    m = re.fullmatch(r"old (0|[1-9][0-9]{0,18})", lines[0])
    if not m:
        raise WitnessError(400, "first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [unb64(line, "consistency proof line", HASH_SIZE) for line in lines[1:]]
    except LedgerError as exc:
        raise WitnessError(400, exc.message) from None
    return AddCheckpointRequest(int(m.group(1)), proof, note)


def origin_hash(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()


class Witness:
    """Witness state in a database, and the add-checkpoint decision."""

    def __init__(self, db: Database, signer: Signer) -> None:
        if signer.alg != ALG_COSIGNATURE_V1:
            raise LedgerError("a witness key must be a cosignature key (type 0x04)")
        self.db = db
        self.signer = signer
        migrate(db, schema.MIGRATIONS)

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    # ------------------------------------------------------------------ configuration

    def trust_log(self, origin: str, vkeys: list[str]) -> None:
        """Trust a log: its origin line and its verifier key(s)."""
        for v in vkeys:
            parse_verifier(v)
        data = json.dumps(sorted(set(vkeys)))
        with self.db.write() as conn:
            self.db.upsert(
                conn, schema.witness_logs, ["origin"], [{"origin": origin, "vkeys": data}]
            )

    def logs(self) -> dict[str, list[str]]:
        with self.db.read() as conn:
            rows = conn.execute(select(schema.witness_logs)).all()
        return {r.origin: json.loads(r.vkeys) for r in rows}

    # ------------------------------------------------------------------ the protocol

    def add_checkpoint(self, body: bytes, now: int | None = None) -> str:
        """Handle one add-checkpoint request; returns the cosignature line(s)."""
        req = parse_add_checkpoint(body)
        try:
            parsed = parse_note(req.note)
            cp = parse_checkpoint(parsed.text)
        except (NoteError, CheckpointError) as exc:
            raise WitnessError(400, exc.message) from None
        vkeys = self.logs().get(cp.origin)
        if vkeys is None:
            raise WitnessError(404, f"this witness does not know the log {cp.origin!r}")
        try:
            open_note(req.note, [parse_verifier(v) for v in vkeys])
        except SignatureError as exc:
            raise WitnessError(403, exc.message) from None
        except NoteError as exc:
            raise WitnessError(403, exc.message) from None
        if req.old_size > cp.size:
            raise WitnessError(400, f"old size {req.old_size} exceeds checkpoint size {cp.size}")
        refused: str | None = None
        line = ""
        with self.db.write() as conn:
            q = select(schema.witness_state).where(schema.witness_state.c.origin == cp.origin)
            if not self.db.is_sqlite:
                q = q.with_for_update()
            row = conn.execute(q).first()
            cur_size, cur_root = (row.size, bytes(row.root)) if row else (0, EMPTY_ROOT)
            if req.old_size != cur_size:
                raise WitnessError(
                    409, f"old size {req.old_size} but the witness has {cur_size}", cur_size
                )
            refused = self._inconsistency(req, cp, cur_root)
            if refused is not None:
                # Kept as evidence (committed), never cosigned.
                self._evidence(conn, cp.origin, refused, req)
            else:
                line = self._cosign(conn, row, cp, parsed, cur_size, now)
        if refused is not None:
            raise WitnessError(422, refused)
        return line

    def _cosign(
        self,
        conn: Connection,
        row: Row | None,
        cp: Checkpoint,
        parsed: Note,
        cur_size: int,
        now: int | None,
    ) -> str:
        line = Signature(
            self.signer.name,
            self.signer.key_id,
            self.signer.sign(parsed.text.encode(), now),
        ).line()
        stored_note = (
            parsed.text
            + "\n"
            + "".join(s.line() for s in parsed.signatures if s.name != self.signer.name)
            + line
        )
        values = {
            "size": cp.size,
            "root": cp.root,
            "note": stored_note,
            "updated_at": datetime.now(UTC),
        }
        if row is None:
            conn.execute(schema.witness_state.insert().values(origin=cp.origin, **values))
        else:
            result = conn.execute(
                update(schema.witness_state)
                .where(
                    schema.witness_state.c.origin == cp.origin,
                    schema.witness_state.c.size == cur_size,
                )
                .values(**values)
            )
            if result.rowcount != 1:
                raise WitnessError(409, "witness state changed concurrently", cur_size)
        return line

    def _inconsistency(
        self, req: AddCheckpointRequest, cp: Checkpoint, cur_root: bytes
    ) -> str | None:
        if cp.size == 0 and cp.root != EMPTY_ROOT:
            return "a checkpoint of size 0 must carry the empty-tree root"
        if req.old_size == 0:
            return "a proof from size 0 must be empty" if req.proof else None
        if req.old_size == cp.size:
            if req.proof:
                return "a proof between equal sizes must be empty"
            return None if cp.root == cur_root else "same size as last cosigned, different root"
        try:
            proofs.verify_consistency(req.old_size, cp.size, req.proof, cur_root, cp.root)
        except ProofError as exc:
            return f"consistency proof from {req.old_size} does not verify: {exc.message}"
        return None

    def _evidence(
        self, conn: Connection, origin: str, reason: str, req: AddCheckpointRequest
    ) -> None:
        conn.execute(
            schema.witness_evidence.insert().values(
                origin=origin,
                reason=reason,
                request=req.encode().decode(),
                received_at=datetime.now(UTC),
            )
        )

    def evidence(self) -> list[dict[str, str]]:
        with self.db.read() as conn:
            rows = conn.execute(select(schema.witness_evidence)).all()
        return [
            {
                "origin": r.origin,
                "reason": r.reason,
                "request": r.request,
                "received_at": r.received_at.isoformat(),
            }
            for r in rows
        ]

    def latest(self, origin_sha256: str) -> str | None:
        """The latest cosigned checkpoint for the log whose origin hashes to the given hex."""
        with self.db.read() as conn:
            for r in conn.execute(select(schema.witness_state)).all():
                if origin_hash(r.origin) == origin_sha256:
                    return r.note
        return None


# --------------------------------------------------------------------------- log side


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the log asks for cosignatures: its vkey and submission URL prefix."""

    verifier: Verifier
    url: str

    @classmethod
    def parse(cls, vkey: str, url: str) -> WitnessEndpoint:
        v = parse_verifier(vkey)
        if v.alg != ALG_COSIGNATURE_V1:
            raise LedgerError("a witness vkey must be of type 0x04 (cosignature/v1)")
        return cls(v, url.rstrip("/"))


def request_cosignature(
    client: httpx.Client,
    witness: WitnessEndpoint,
    note: str,
    old_size: int,
    prove: Callable[[int], list[bytes]],
) -> tuple[str, int]:
    """Ask one witness to cosign ``note``; retries once on a 409 with the witness's size.

    ``prove(old)`` returns the log's consistency proof from size ``old`` to the
    checkpoint. Returns (verified cosignature lines, the size now cosigned).
    """
    cp = parse_checkpoint(parse_note(note).text)
    for _ in range(2):
        proof = prove(old_size) if old_size else []
        req = AddCheckpointRequest(old_size, proof, note)
        resp = client.post(f"{witness.url}/add-checkpoint", content=req.encode())
        if resp.status_code == 409 and resp.headers.get("content-type", "").startswith(
            "text/x.tlog.size"
        ):
            old_size = int(resp.text.strip())
            if old_size > cp.size:
                raise WitnessError(409, f"witness is ahead of the log ({old_size} > {cp.size})")
            continue
        if resp.status_code != 200:
            raise WitnessError(resp.status_code, f"witness refused: {resp.text.strip()[:200]}")
        cosigned = open_note(parse_note(note).text + "\n" + resp.text, [witness.verifier])
        return "".join(s.line() for s in cosigned.verified), cp.size
    raise WitnessError(409, "witness state kept changing")
