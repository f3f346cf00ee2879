"""The boost registry: manual promotion of a video ("heating") only in the open.

A boost is declared by the operator or the platform — who, why, which video,
by how much, for which regions, in which time window — and applies only once
the oversight body approves it (a different party from the one that declared
it; the Cedar rules decide each step). Declared, approved, rejected and
revoked boosts are ``boost.*`` ledger entries; the feed labels every boosted
item and the ``feed.served`` entry names the boosts it applied, so the
oversight monitor can match every boosted impression to an approval. A boost
nobody declared has no such entry: the replay audit finds it instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, Text, select, update
from sqlalchemy.engine import Connection, Row

from cleanroom.errors import CleanroomError
from cleanroom.gate.gate import Gate
from cleanroom.gate.principals import Principal
from cleanroom.ledger.authority import BOOST_REVIEW_TYPE, reviewer_key_names, verify_review
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.note import Verifier
from cleanroom.storage import Database, Migration, migrate

MAX_FACTOR = 5.0
MAX_WINDOW_MS = 31 * 24 * 3600 * 1000
STATUSES = ("declared", "approved", "rejected", "revoked")

_meta = MetaData()
boosts_t = Table(
    "boosts",
    _meta,
    Column("id", String(32), primary_key=True),
    Column("video", String(128), nullable=False),
    Column("factor", Float, nullable=False),
    Column("label", String(200), nullable=False),
    Column("regions", Text, nullable=False),  # JSON list; [] = everywhere
    Column("reason", Text, nullable=False),
    Column("declared_by", String(128), nullable=False),
    Column("declared_org", String(32), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reviewed_by", String(128)),
    Column("note", Text),
    Column("declared_entry", BigInteger, nullable=False),
    Column("last_entry", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn, tables=[boosts_t])


MIGRATIONS = [Migration("boosts", 1, "declared boosts and their approval", _create)]


class BoostError(CleanroomError):
    """A boost that cannot be declared as given."""

    status = 400
    title = "Bad boost"


class BoostConflict(CleanroomError):
    """A boost in a state that does not allow the step asked for."""

    status = 409
    title = "Boost in another state"


class UnknownBoost(CleanroomError):
    """No boost with that id."""

    status = 404
    title = "No such boost"


@dataclass(frozen=True)
class BoostRequest:
    """A boost as declared: video, factor, reason, window and regions."""

    video: str
    factor: float
    reason: str
    start_ms: int
    end_ms: int
    label: str = "Promoted"
    regions: tuple[str, ...] = ()


def _checked(req: BoostRequest, now_ms: int) -> BoostRequest:
    if not req.video.strip():
        raise BoostError("a boost names a video")
    if not (0 < req.factor <= MAX_FACTOR):
        raise BoostError(f"factor must be in (0, {MAX_FACTOR}], got {req.factor}")
    if not req.reason.strip():
        raise BoostError("a boost says why (reason)")
    if not req.label.strip():
        raise BoostError("a boost carries a label people see")
    if req.end_ms <= req.start_ms:
        raise BoostError("the window ends after it starts (end_ms > start_ms)")
    if req.end_ms - req.start_ms > MAX_WINDOW_MS:
        raise BoostError("a boost lasts at most 31 days; declare another after it")
    if req.end_ms <= now_ms:
        raise BoostError("the window is already over")
    bad = [r for r in req.regions if not re.fullmatch(r"[A-Z]{2}", r)]
    if bad:
        raise BoostError(f"regions are ISO 3166 alpha-2 codes, got {bad}")
    return req


class BoostRegistry:
    """Declared boosts and their reviews: declared through the gate, approved by the oversight
    body, on the ledger."""

    def __init__(
        self,
        gate: Gate,
        clock: Any = time.time,
        reviewer: Callable[[str], tuple[str, Verifier] | None] | None = None,
    ) -> None:
        """``reviewer`` gives a registered reviewer's organisation and key (the
        release registry's): an approval carries a review signed by one of the
        oversight body's reviewers, which the monitor verifies again."""
        self.gate = gate
        self.db: Database = gate.vault.db
        self.clock = clock
        self.reviewer = reviewer or (lambda name: None)
        migrate(self.db, MIGRATIONS)

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def declare(
        self,
        principal: Principal,
        req: BoostRequest,
        known: Callable[[str], bool] | None = None,
    ) -> dict[str, Any]:
        """Declare a boost (operator or platform); it applies once approved.
        ``known`` says whether the video is in the catalogue."""
        req = _checked(req, self._now())  # bad input records nothing
        self.gate.require(principal, "write", "Boosts", purpose="boost_declare")
        if known is not None and not known(req.video):
            raise BoostError(f"no video {req.video!r} in the catalogue")
        boost_id = "boost-" + secrets.token_hex(6)
        entry = {
            "type": "boost.declared",
            "v": 1,
            "time_ms": self._now(),
            "boost": boost_id,
            "video": req.video,
            "factor": req.factor,
            "label": req.label,
            "regions": sorted(req.regions),
            "start_ms": req.start_ms,
            "end_ms": req.end_ms,
            "reason": req.reason,
            "declared_by": principal.name,
            "org": principal.org,
        }
        index = self.gate.log.append(entry)
        same = ("video", "factor", "label", "reason", "declared_by", "start_ms", "end_ms")
        row = {k: entry[k] for k in same} | {
            "id": boost_id,
            "regions": json.dumps(entry["regions"]),
            "declared_org": principal.org,
            "status": "declared",
            "declared_entry": index,
            "last_entry": index,
        }
        with self.db.write() as conn:
            conn.execute(boosts_t.insert().values(**row))
        return self.get(boost_id)

    def review(
        self,
        principal: Principal,
        boost_id: str,
        *,
        approve: bool,
        note: str = "",
        envelope: Any = None,
    ) -> dict[str, Any]:
        """The oversight body approves or rejects a declared boost. An approval
        carries ``envelope``: a review of the declaration signed by a reviewer
        of the oversight body (``cleanroom.ledger.authority.sign_boost_review``)."""
        self.gate.require(principal, "write", "Boosts", purpose="boost_review")
        b = self.get(boost_id)
        if b["status"] != "declared":
            raise BoostConflict(f"{boost_id} is {b['status']}, not waiting for review")
        if principal.name == b["declared_by"]:
            raise BoostConflict("a boost is approved by someone other than who declared it")
        signed = self._signed_approval(b, envelope) if approve else {}
        status = "approved" if approve else "rejected"
        return self._change(principal, b, status, note, signed)

    def _signed_approval(self, b: dict[str, Any], envelope: Any) -> dict[str, Any]:
        """The reviewer and envelope of a signed approval of ``b``'s declaration."""
        if envelope is None:
            raise BoostError(
                "an approval carries a review of the declaration signed by a reviewer of the "
                "oversight body ('envelope')",
                hint=f"sign the declaration's digest {b['declared_digest']}: "
                "cleanroom oversight boost-review",
            )
        try:
            for name in reviewer_key_names(envelope):
                reg = self.reviewer(name)
                if reg is None or reg[0] != "oversight":
                    continue
                pred = verify_review(envelope, reg[1], predicate_type=BOOST_REVIEW_TYPE,
                                     subject=b["declared_digest"])  # fmt: skip
                if pred["decision"] != "approve":
                    raise BoostError(f"the signed review says {pred['decision']}, not approve")
                if name == b["declared_by"]:
                    raise BoostConflict("a boost is approved by someone other than who declared it")
                return {"reviewer": name, "envelope": envelope}
        except LedgerError as e:
            raise BoostError(f"the signed review does not hold: {e.message}") from None
        raise BoostError("the review is not signed by a registered reviewer of the oversight body")

    def revoke(self, principal: Principal, boost_id: str, note: str) -> dict[str, Any]:
        """End a boost early: its declaring party or the oversight body."""
        purpose = "boost_review" if principal.org == "oversight" else "boost_declare"
        self.gate.require(principal, "write", "Boosts", purpose=purpose)
        b = self.get(boost_id)
        if principal.org not in ("oversight", b["declared_org"]):
            raise BoostConflict("only the declaring party or the oversight body revokes a boost")
        if b["status"] in ("rejected", "revoked"):
            raise BoostConflict(f"{boost_id} is already {b['status']}")
        if not note.strip():
            raise BoostError("a revocation says why")
        return self._change(principal, b, "revoked", note)

    def _change(
        self,
        principal: Principal,
        b: dict[str, Any],
        status: str,
        note: str,
        signed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        index = self.gate.log.append(
            {
                "type": f"boost.{status}",
                "v": 1,
                "time_ms": self._now(),
                "boost": b["id"],
                "by": principal.name,
                "org": principal.org,
                "note": note,
                **(signed or {}),
            }
        )
        with self.db.write() as conn:
            conn.execute(
                update(boosts_t)
                .where(boosts_t.c.id == b["id"], boosts_t.c.status == b["status"])
                .values(status=status, reviewed_by=principal.name, note=note, last_entry=index)
            )
        return self.get(b["id"])

    # -- reading --------------------------------------------------------------------

    @staticmethod
    def _row(r: Row) -> dict[str, Any]:
        return {
            "id": r.id,
            "video": r.video,
            "factor": r.factor,
            "label": r.label,
            "regions": json.loads(r.regions),
            "reason": r.reason,
            "declared_by": r.declared_by,
            "declared_org": r.declared_org,
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
            "status": r.status,
            "reviewed_by": r.reviewed_by,
            "note": r.note,
            "declared_entry": r.declared_entry,
            "ledger_index": r.last_entry,
        }

    def _with_digest(self, b: dict[str, Any]) -> dict[str, Any]:
        """A boost with the digest of its declaration (what a reviewer signs)."""
        body = self.gate.log.store.entry(b["declared_entry"])
        return {**b, "declared_digest": "sha256:" + hashlib.sha256(body).hexdigest()}

    def get(self, boost_id: str) -> dict[str, Any]:
        with self.db.read_latest() as conn:
            r = conn.execute(select(boosts_t).where(boosts_t.c.id == boost_id)).first()
        if r is None:
            raise UnknownBoost(f"no boost {boost_id!r}")
        return self._with_digest(self._row(r))

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise BoostError(f"status is one of {', '.join(STATUSES)}")
        q = select(boosts_t).order_by(boosts_t.c.declared_entry)
        if status is not None:
            q = q.where(boosts_t.c.status == status)
        with self.db.read_latest() as conn:
            return [self._row(r) for r in conn.execute(q).all()]

    def approved(self) -> list[dict[str, Any]]:
        """What the engine applies: approved boosts whose window is not over
        (the recommender hands them to the engine as its ``Boost``)."""
        now = self._now()
        return [b for b in self.list("approved") if b["end_ms"] > now]
