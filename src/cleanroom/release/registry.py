"""The release registry: reviewers and their keys, submitted artifacts,
signed reviews, the verdict of the release policy, and what was deployed when.

Every change is a ledger entry first (``release.*``, no personal data), then
a row here; the rows are an index the oversight body does not need:
:func:`cleanroom.release.verify.replay` rebuilds the same state from the
ledger entries and the reviewers' public keys alone.

Artifacts are opaque content digests with a kind (``source``, ``model``, ``infra``,
``policy``) and a manifest (what reviewers read: file lists, configuration);
the part that builds an artifact checks its digest against its content."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
)

from cleanroom.ledger.authority import require_statement, root_verifier
from cleanroom.ledger.dsse import as_document
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.note import ALG_ED25519, Verifier, parse_verifier
from cleanroom.release import dsse
from cleanroom.release.errors import (
    AttestationError,
    NotApproved,
    ReleaseError,
    ReviewerError,
    UnknownArtifact,
)
from cleanroom.release.intoto import REVIEW_TYPE, hex_of, parse_statement, subject_digests
from cleanroom.release.policy import ReleasePolicy, Review, Verdict
from cleanroom.storage import Database, Migration, migrate
from cleanroom.storage.migrations import add_column

KINDS = ("source", "model", "policy", "infra")
_metadata = MetaData()
reviewers_t = Table(
    "release_reviewers",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("org", String(16), nullable=False),
    Column("vkey", String(256), nullable=False),
    Column("added_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    # an oversight reviewer's registration: the oversight root's statement (JSON)
    Column("statement", Text),
)
artifacts_t = Table(
    "release_artifacts",
    _metadata,
    Column("digest", String(80), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("submitted_by", String(64), nullable=False),
    Column("org", String(16), nullable=False),
    Column("submitted_ms", BigInteger, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)
reviews_t = Table(
    "release_reviews",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("artifact", String(80), nullable=False, index=True),
    Column("reviewer", String(64), nullable=False),
    Column("org", String(16), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("reviewed_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)
deployments_t = Table(
    "release_deployments",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, index=True),
    Column("artifact", String(80), nullable=False),
    Column("by", String(64), nullable=False),
    Column("rollback", Integer, nullable=False),
    Column("deployed_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)


evaluations_t = Table(
    "release_evaluations",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("artifact", String(80), nullable=False, index=True),
    Column("metrics", Text, nullable=False),
    Column("by", String(64), nullable=False),
    Column("evaluated_ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _metadata.create_all(conn, tables=[reviewers_t, artifacts_t, reviews_t, deployments_t])


def _create_evaluations(conn: Connection) -> None:
    _metadata.create_all(conn, tables=[evaluations_t])


def _add_statement(conn: Connection) -> None:
    add_column(conn, "release_reviewers", "statement", "TEXT")


MIGRATIONS = [
    Migration("release", 1, "reviewers, artifacts, reviews, deployments", _create),
    Migration("release", 2, "offline evaluations of artifacts", _create_evaluations),
    Migration("release", 3, "the oversight root's statement of its reviewers", _add_statement),
]


class Ledger(Protocol):
    """What the registry needs of a ledger: appending an entry."""

    def append(self, entry: dict[str, Any]) -> int: ...


@dataclass(frozen=True)
class Artifact:
    """A submitted artifact: digest, kind, name, manifest and who submitted it."""

    digest: str
    kind: str
    name: str
    submitted_by: str
    org: str
    submitted_ms: int
    manifest: dict[str, Any] = field(repr=False)
    ledger_index: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "kind": self.kind,
            "name": self.name,
            "submitted_by": self.submitted_by,
            "org": self.org,
            "submitted_ms": self.submitted_ms,
            "ledger_index": self.ledger_index,
        }


@dataclass(frozen=True)
class Deployment:
    """A deployment (or rollback) of an artifact, as recorded."""

    kind: str
    artifact: str
    by: str
    rollback: bool
    deployed_ms: int
    ledger_index: int

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def check_review(
    envelope: Any, verifier: Verifier, artifact: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The review statement of ``envelope`` signed by ``verifier`` about
    ``artifact`` (its predicate and the statement); AttestationError otherwise.
    What the registry checks on submission and a verifier checks on replay."""
    body, _ = dsse.verify(envelope, [verifier])
    stmt = parse_statement(body, REVIEW_TYPE)
    if artifact not in subject_digests(stmt):
        raise AttestationError(f"the review is not about artifact {artifact}")
    pred = stmt["predicate"]
    if pred["reviewer"] != verifier.name:
        raise AttestationError(
            f"the review names reviewer {pred['reviewer']!r} but is signed by {verifier.name!r}"
        )
    return pred, stmt


class Registry:
    """Artifacts, reviewers, reviews and deployments, each step on the ledger; the release
    policy decides what may be deployed."""

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        policy: ReleasePolicy | None = None,
        *,
        clock: Any = time.time,
        oversight_root: Verifier | None = None,
        origin: str = "",
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.policy = policy or ReleasePolicy()
        self.clock = clock
        # the oversight body's pinned root key: oversight reviewers exist only
        # by a statement it signed for this log (``origin``)
        self.oversight_root = oversight_root
        self.origin = origin
        self._statements: dict[str, bool] = {}
        migrate(db, MIGRATIONS)

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def _record(self, entry: dict[str, Any], table: Table, **row: Any) -> int:
        """The ledger entry first (durable), then the row that indexes it;
        returns the entry's index."""
        index = self.ledger.append({"v": 1, **entry})
        with self.db.write() as conn:
            conn.execute(table.insert().values(**row, ledger_index=index))
        return index

    # -- reviewers -------------------------------------------------------------------

    def add_reviewer(
        self, name: str, org: str, vkey: str, *, added_by: str, statement: Any = None
    ) -> int:
        """Register a reviewer's public key (a signed-note vkey whose name is the
        reviewer's principal name); returns the ledger index. A reviewer of the
        oversight body needs ``statement``: the oversight root's statement
        adding exactly this name and key."""
        try:
            v = parse_verifier(vkey)
        except Exception as e:  # KeyFormatError and friends: one clear message
            raise ReviewerError(f"not a public key in signed-note format: {e}") from None
        if v.alg != ALG_ED25519:
            raise ReviewerError("a reviewer key must be an Ed25519 signing key (type 0x01)")
        if v.name != name:
            raise ReviewerError(f"the key is named {v.name!r}, not {name!r}")
        if org == "parent":
            raise ReviewerError("the foreign parent cannot have reviewers")
        if org not in self.policy.reviewer_orgs:
            raise ReviewerError(f"reviewers of {org!r} may not review releases")
        if org == "oversight":
            statement = None if statement is None else as_document(statement)
            self._check_statement("add", name, vkey, statement)
        elif statement is not None:
            raise ReviewerError("only reviewers of the oversight body come with a statement")
        with self.db.read_latest() as conn:
            if conn.execute(select(reviewers_t.c.name).where(reviewers_t.c.name == name)).first():
                raise ReviewerError(f"{name!r} is already a reviewer")
        now = self._now()
        entry = {"type": "release.reviewer", "reviewer": name, "org": org, "vkey": vkey}
        if statement is not None:
            entry["statement"] = statement
        return self._record(
            {**entry, "added_by": added_by, "at_ms": now},
            reviewers_t,
            name=name,
            org=org,
            vkey=vkey,
            added_ms=now,
            statement=None if statement is None else json.dumps(statement, sort_keys=True),
        )

    def remove_reviewer(self, name: str, *, by: str, statement: Any = None) -> int:
        """Take a reviewer's key off the register (their earlier reviews stand).
        A reviewer of the oversight body goes only by the oversight root's
        statement removing them."""
        with self.db.read_latest() as conn:
            row = conn.execute(select(reviewers_t).where(reviewers_t.c.name == name)).first()
        if row is None:
            raise ReviewerError(f"{name!r} is not a reviewer")
        entry: dict[str, Any] = {"type": "release.reviewer_removed", "reviewer": name,
                                 "org": row.org, "by": by, "at_ms": self._now()}  # fmt: skip
        if row.org == "oversight":
            statement = None if statement is None else as_document(statement)
            self._check_statement("remove", name, None, statement)
            entry["statement"] = statement
        index = self.ledger.append({"v": 1, **entry})
        with self.db.write() as conn:
            conn.execute(delete(reviewers_t).where(reviewers_t.c.name == name))
        return index

    def _check_statement(self, action: str, name: str, vkey: str | None, statement: Any) -> None:
        want = {"vkey": vkey} if action == "add" else {}
        try:
            require_statement(
                statement, self.oversight_root, origin=self.origin, action=action,
                subject="reviewer", name=name, what="a reviewer of the oversight body", **want,
            )  # fmt: skip
        except LedgerError as e:
            raise ReviewerError(e.message, e.hint) from None

    def _oversight_ok(self, name: str, vkey: str, statement: str | None) -> bool:
        """Whether a stored oversight reviewer still has the root's statement
        (a row written around :meth:`add_reviewer` has none)."""
        key = f"{name}|{vkey}|{statement}"
        if key not in self._statements:
            try:
                self._check_statement("add", name, vkey, None if statement is None else
                                      json.loads(statement))  # fmt: skip
                self._statements[key] = True
            except ReviewerError:
                self._statements[key] = False
        return self._statements[key]

    def reviewer(self, name: str) -> tuple[str, Verifier] | None:
        """A registered reviewer's organisation and key (None if unknown, or an
        oversight reviewer without the root's statement)."""
        with self.db.read_latest() as conn:
            row = conn.execute(select(reviewers_t).where(reviewers_t.c.name == name)).first()
        if row is None:
            return None
        if row.org == "oversight" and not self._oversight_ok(row.name, row.vkey, row.statement):
            return None
        return row.org, parse_verifier(row.vkey)

    def reviewers(self) -> list[dict[str, Any]]:
        with self.db.read_latest() as conn:
            rows = conn.execute(select(reviewers_t).order_by(reviewers_t.c.name)).all()
        return [{"name": r.name, "org": r.org, "vkey": r.vkey} for r in rows]

    def pin_oversight_root(self, vkey: str, *, by: str) -> int:
        """Put the oversight body's root key on the record (``oversight.root``),
        once, before any reviewer: the monitor checks every oversight statement
        against it. Returns the entry's index."""
        root = root_verifier(vkey)
        if self.oversight_root is not None and self.oversight_root.vkey != root.vkey:
            raise ReviewerError("another oversight root key is pinned in this clean room")
        self.oversight_root = root
        return self.ledger.append(
            {"type": "oversight.root", "v": 1, "vkey": vkey, "by": by, "at_ms": self._now()}
        )

    # -- artifacts -------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        name: str,
        digest: str,
        manifest: dict[str, Any],
        *,
        submitted_by: str,
        org: str,
        attestation: dict[str, Any] | None = None,
    ) -> Artifact:
        """Record an artifact for review (the same digest twice is refused)."""
        if kind not in KINDS:
            raise ReleaseError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        hex_of(digest)
        if not name or len(name) > 128:
            raise ReleaseError("an artifact needs a name of 1 to 128 characters")
        if self.get(digest, missing_ok=True) is not None:
            raise ReleaseError(f"artifact {digest} was already submitted")
        now = self._now()
        entry: dict[str, Any] = {
            "type": "release.submitted",
            "artifact": digest,
            "kind": kind,
            "name": name,
            "submitted_by": submitted_by,
            "org": org,
            "at_ms": now,
        }
        if attestation is not None:
            entry["attestation"] = attestation
        index = self._record(
            entry,
            artifacts_t,
            digest=digest,
            kind=kind,
            name=name,
            submitted_by=submitted_by,
            org=org,
            submitted_ms=now,
            manifest=json.dumps(manifest, sort_keys=True),
        )
        return Artifact(digest, kind, name, submitted_by, org, now, manifest, index)

    def get(self, digest: str, *, missing_ok: bool = False) -> Artifact | None:
        with self.db.read_latest() as conn:
            row = conn.execute(select(artifacts_t).where(artifacts_t.c.digest == digest)).first()
        if row is None:
            if missing_ok:
                return None
            raise UnknownArtifact(f"no artifact {digest} was submitted")
        return Artifact(
            row.digest,
            row.kind,
            row.name,
            row.submitted_by,
            row.org,
            row.submitted_ms,
            json.loads(row.manifest),
            row.ledger_index,
        )

    def artifacts(self, kind: str | None = None) -> list[Artifact]:
        q = select(artifacts_t.c.digest).order_by(artifacts_t.c.submitted_ms)
        if kind is not None:
            q = q.where(artifacts_t.c.kind == kind)
        with self.db.read_latest() as conn:
            digests = [r.digest for r in conn.execute(q)]
        return [self.get(d) for d in digests]  # type: ignore[misc]

    # -- reviews -----------------------------------------------------------------------

    def review(self, digest: str, envelope: Any) -> Verdict:
        """Record a signed review (a DSSE envelope of an in-toto statement with
        the review predicate) after checking it with the reviewer's registered
        key; returns the artifact's verdict. Nothing is recorded if any check
        fails."""
        art = self.get(digest)
        assert art is not None
        _, _, sigs = dsse.parse(envelope)
        names = {k.split("+")[0] for k, _ in sigs}
        known = [(n, self.reviewer(n)) for n in sorted(names)]
        found = [(n, r) for n, r in known if r is not None]
        if not found:
            raise ReviewerError(
                "the review is not signed by a registered reviewer",
                hint="register the key first: cleanroom release reviewer add",
            )
        errors = []
        for name, (org, verifier) in found:
            try:
                pred, _ = check_review(envelope, verifier, digest)
            except AttestationError as e:
                errors.append(f"{name}: {e.message}")
                continue
            if pred["org"] != org:
                raise ReviewerError(f"{name} reviews for {org!r}, not {pred['org']!r}")
            if pred["artifactKind"] != art.kind:
                raise AttestationError(
                    f"the review is of a {pred['artifactKind']} artifact; this one is {art.kind}"
                )
            now = self._now()
            doc = envelope if isinstance(envelope, dict) else json.loads(envelope)
            self._record(
                {"type": "release.review", "artifact": digest, "reviewer": name, "org": org,
                 "decision": pred["decision"], "envelope": doc, "at_ms": now},
                reviews_t,
                artifact=digest,
                reviewer=name,
                org=org,
                decision=pred["decision"],
                envelope=json.dumps(doc, sort_keys=True),
                reviewed_ms=now,
            )  # fmt: skip
            return self.verdict(digest)
        raise AttestationError("; ".join(errors))

    def reviews(self, digest: str) -> list[Review]:
        with self.db.read_latest() as conn:
            rows = conn.execute(
                select(reviews_t).where(reviews_t.c.artifact == digest).order_by(reviews_t.c.id)
            ).all()
        return [Review(r.reviewer, r.org, r.decision, r.ledger_index) for r in rows]

    def review_envelopes(self, digest: str) -> dict[str, Any]:
        """Each reviewer's first signed review of ``digest`` (the envelope)."""
        with self.db.read_latest() as conn:
            rows = conn.execute(
                select(reviews_t.c.reviewer, reviews_t.c.envelope)
                .where(reviews_t.c.artifact == digest)
                .order_by(reviews_t.c.id)
            ).all()
        out: dict[str, Any] = {}
        for r in rows:
            out.setdefault(r.reviewer, json.loads(r.envelope))
        return out

    def verdict(self, digest: str) -> Verdict:
        art = self.get(digest)
        assert art is not None
        return self.policy.evaluate(art.submitted_by, self.reviews(digest), art.kind)

    # -- evaluations ---------------------------------------------------------------------

    def record_evaluation(self, digest: str, metrics: dict[str, Any], *, by: str) -> int:
        """Put an artifact's metrics on a fixed evaluation set on the record."""
        self.get(digest)
        now = self._now()
        return self._record(
            {"type": "release.evaluated", "artifact": digest, "metrics": metrics, "by": by,
             "at_ms": now},
            evaluations_t,
            artifact=digest,
            metrics=json.dumps(metrics, sort_keys=True),
            by=by,
            evaluated_ms=now,
        )  # fmt: skip

    def evaluation(self, digest: str) -> dict[str, Any] | None:
        """The latest recorded evaluation of ``digest``."""
        with self.db.read_latest() as conn:
            row = conn.execute(
                select(evaluations_t)
                .where(evaluations_t.c.artifact == digest)
                .order_by(evaluations_t.c.id.desc())
                .limit(1)
            ).first()
        return (
            None if row is None else {**json.loads(row.metrics), "ledger_index": row.ledger_index}
        )

    # -- deployments -------------------------------------------------------------------

    def deploy(self, digest: str, *, by: str, rollback: bool = False) -> Deployment:
        """Make an approved artifact the live one of its kind. An artifact
        without an approved release is refused, and the refusal is recorded."""
        art = self.get(digest, missing_ok=True)
        verdict = self.verdict(digest) if art is not None else None
        if art is None or verdict is None or not verdict.approved:
            if art is None or verdict is None:
                why = f"no artifact {digest} was submitted"
            else:
                why = f"{art.kind} {art.name} ({digest}) is not approved: {verdict.missing}"
            refused = NotApproved(
                why, hint="it needs approvals under the release policy first", artifact=digest
            )
            self.refuse(art.kind if art else "unknown", refused, by=by)
            raise refused
        now = self._now()
        index = self._record(
            {"type": "release.deployed", "artifact": digest, "kind": art.kind, "by": by,
             "rollback": rollback, "at_ms": now},
            deployments_t,
            kind=art.kind,
            artifact=digest,
            by=by,
            rollback=int(rollback),
            deployed_ms=now,
        )  # fmt: skip
        d = Deployment(art.kind, digest, by, rollback, now, index)
        return d

    def refuse(self, kind: str, error: NotApproved, *, by: str) -> int:
        """Put a refusal to deploy or load an artifact on the record (the
        registry's refusals, the deploy check's and the model lineage check's)."""
        return self.ledger.append(
            {
                "type": "release.refused",
                "v": 1,
                "kind": kind,
                "artifact": error.artifact,
                "by": by,
                "reason": error.message,
                "at_ms": self._now(),
            }
        )

    def history(self, kind: str) -> list[Deployment]:
        with self.db.read_latest() as conn:
            rows = conn.execute(
                select(deployments_t)
                .where(deployments_t.c.kind == kind)
                .order_by(deployments_t.c.id)
            ).all()
        return [
            Deployment(r.kind, r.artifact, r.by, bool(r.rollback), r.deployed_ms, r.ledger_index)
            for r in rows
        ]

    def live(self, kind: str, at_ms: int | None = None) -> Deployment | None:
        """What was live for ``kind`` at ``at_ms`` (now by default)."""
        out = None
        for d in self.history(kind):
            if at_ms is None or d.deployed_ms <= at_ms:
                out = d
        return out

    def rollback(self, kind: str, *, by: str) -> Deployment:
        """Deploy again the approved artifact that was live before the current one."""
        hist = self.history(kind)
        if not hist:
            raise ReleaseError(f"nothing of kind {kind!r} was ever deployed")
        current = hist[-1].artifact
        for d in reversed(hist[:-1]):
            if d.artifact != current:
                return self.deploy(d.artifact, by=by, rollback=True)
        raise ReleaseError(f"no earlier {kind} release to roll back to")
