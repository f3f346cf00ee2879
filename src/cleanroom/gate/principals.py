"""Principals and their API tokens.

A principal is a person, a service or a platform user, of one organisation
(operator, platform, parent, oversight, researcher, users), with a role, a
jurisdiction and a clearance. Tokens are random (256 bits), shown once, and
stored only as SHA-256 hashes, with an expiry; revoking is immediate for every
process because each request looks its token up.

Token format: ``crt_<token id>_<secret>``; the id finds the row, the secret is
compared in constant time with the stored hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    insert,
    select,
    update,
)

from cleanroom.ledger.authority import RootStatement, require_statement
from cleanroom.ledger.dsse import as_document
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.note import Verifier
from cleanroom.storage import Database, Migration, migrate
from cleanroom.storage.errors import CleanroomError
from cleanroom.storage.migrations import add_column
from cleanroom.vault.model import check_id, check_jurisdiction

ORGS = ("operator", "platform", "parent", "oversight", "researcher", "users")
KINDS = ("person", "service", "user")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_TOKEN = re.compile(r"^crt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
DEFAULT_TTL = timedelta(days=90)

_metadata = MetaData()
principals_t = Table(
    "gate_principals",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("org", String(16), nullable=False),
    Column("role", String(64), nullable=False),
    Column("jurisdiction", String(8), nullable=False),
    Column("clearance", Integer, nullable=False),
    Column("subject", String(128)),  # for kind "user": the user id they are
    Column("disabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # for org "oversight": the statement of the oversight body's root key that
    # added the principal (a DSSE envelope, JSON)
    Column("statement", Text),
)
tokens_t = Table(
    "gate_tokens",
    _metadata,
    Column("id", String(16), primary_key=True),
    Column("principal", String(64), nullable=False, index=True),
    Column("hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


def _create(conn: Connection) -> None:
    _metadata.create_all(conn, tables=[principals_t, tokens_t])


def _add_statement(conn: Connection) -> None:
    add_column(conn, "gate_principals", "statement", "TEXT")


MIGRATIONS = [
    Migration("gate", 1, "principals and token hashes", _create),
    Migration("gate", 2, "the oversight root's statement of oversight principals", _add_statement),
]


TOKEN_ID = r"^[0-9a-f]{16}$"  # a token's public id (its secret is never listed)


class PrincipalError(CleanroomError):
    """A principal that cannot be registered or changed as given."""

    status = 422
    title = "Invalid principal"


class UnknownPrincipal(CleanroomError):
    """No principal of that name (or a disabled one)."""

    status = 404
    title = "Unknown principal"


class NothingToRevoke(CleanroomError):
    """The principal holds no live token (of that id) to revoke."""

    status = 409
    title = "Nothing to revoke"


class Unauthenticated(CleanroomError):
    """Missing, malformed, unknown, expired or revoked bearer token."""

    status = 401
    title = "Unauthorized"


@dataclass(frozen=True)
class Principal:
    """Who asks: name, kind, organisation, role, jurisdiction, clearance (and the data subject
    a user is)."""

    name: str
    kind: str
    org: str
    role: str
    jurisdiction: str
    clearance: int = 0
    subject: str | None = None
    disabled: bool = False

    def attributes(self) -> tuple[str, str, str, str, str, int]:
        """What a decision depends on (the decision cache keys on it)."""
        return (self.name, self.kind, self.org, self.role, self.jurisdiction, self.clearance)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: whose, when made, when it expires, whether revoked."""

    id: str
    principal: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None and as_utc(self.expires_at) > datetime.now(UTC)

    def to_dict(self) -> dict[str, Any]:
        """As listed to the operator and the oversight body (no secret, no hash)."""
        at = {k: None if v is None else as_utc(v).isoformat(timespec="seconds")
              for k, v in (("created_at", self.created_at), ("expires_at", self.expires_at),
                           ("revoked_at", self.revoked_at))}  # fmt: skip
        return {"id": self.id, **at, "live": self.live}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def as_utc(value: datetime) -> datetime:
    """A stored time as UTC (SQLite hands back naive datetimes)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Principals:
    """The registry of principals and tokens (one database)."""

    def __init__(
        self,
        db: Database,
        *,
        auth_ttl: float = 300.0,
        revocation_check: float = 0.5,
        oversight_root: Verifier | None = None,
        origin: str = "",
    ) -> None:
        self.db = db
        # The oversight body's pinned root key: a principal of org "oversight"
        # exists only by a statement it signed for this log (``origin``).
        self.oversight_root = oversight_root
        self.origin = origin
        self._statements: dict[str, bool] = {}
        # Verified tokens are remembered for ``auth_ttl`` seconds (never past
        # their expiry). Revocations forget them at once in this process; other
        # processes notice within ``revocation_check`` seconds: a remembered
        # token counts only while the revocations were looked at that recently.
        self.auth_ttl = auth_ttl
        self.revocation_check = revocation_check
        self._verified: dict[str, tuple[float, datetime, Principal]] = {}
        self._revocations: tuple[Any, ...] | None = None
        self._revocations_at = float("-inf")
        migrate(db, MIGRATIONS)

    def add(self, principal: Principal, statement: Any = None) -> Principal:
        """Register a principal. One of the oversight body needs ``statement``:
        the root key's statement adding exactly this principal."""
        p = principal
        if not _NAME.fullmatch(p.name):
            raise PrincipalError(
                f"principal name {p.name!r} must be lower-case letters, digits, . _ - (max 64)"
            )
        if p.org not in ORGS:
            raise PrincipalError(f"org must be one of {', '.join(ORGS)}, got {p.org!r}")
        if p.kind not in KINDS:
            raise PrincipalError(f"kind must be one of {', '.join(KINDS)}, got {p.kind!r}")
        if not p.role or len(p.role) > 64:
            raise PrincipalError("a principal needs a role (at most 64 characters)")
        check_jurisdiction(p.jurisdiction)
        if not 0 <= p.clearance <= 9:
            raise PrincipalError("clearance is a level from 0 to 9")
        if (p.kind == "user") != (p.org == "users"):
            raise PrincipalError(
                "a principal of kind 'user' belongs to org 'users', and only it: a user is "
                "never staff of the operator or any other party"
            )
        if (p.kind == "user") != (p.subject is not None):
            raise PrincipalError("a principal of kind 'user' needs --subject (and only it)")
        if p.subject is not None:
            check_id(p.subject, "subject")
        if p.org == "oversight":
            self.check_statement(p, statement)
        elif statement is not None:
            raise PrincipalError("only principals of the oversight body come with a statement")
        doc = None if statement is None else json.dumps(as_document(statement), sort_keys=True)
        with self.db.write() as conn:
            if conn.execute(
                select(principals_t.c.name).where(principals_t.c.name == p.name)
            ).first():
                raise PrincipalError(f"principal {p.name!r} already exists")
            conn.execute(
                insert(principals_t).values(
                    **asdict(p), created_at=datetime.now(UTC), statement=doc
                )
            )
        return p

    def check_statement(self, p: Principal, statement: Any) -> RootStatement:
        """The root statement adding ``p`` to the oversight body, verified, or
        :class:`PrincipalError` saying what is missing."""
        return self._root_statement(
            statement, "add", p.name, kind=p.kind, role=p.role, jurisdiction=p.jurisdiction
        )

    def check_removal(self, p: Principal, statement: Any) -> RootStatement:
        """The root statement removing ``p`` from the oversight body, verified."""
        return self._root_statement(statement, "remove", p.name)

    def _root_statement(self, statement: Any, action: str, name: str, **want: Any) -> RootStatement:
        try:
            return require_statement(
                statement, self.oversight_root, origin=self.origin, action=action,
                subject="principal", name=name, what=f"{name!r} of the oversight body", **want,
            )  # fmt: skip
        except LedgerError as e:
            raise PrincipalError(e.message, e.hint) from None

    def disable(self, name: str) -> int:
        """Disable a principal and revoke its tokens (its row stays, for the
        record of who it was); returns how many tokens were revoked."""
        self.get(name)
        with self.db.write() as conn:
            conn.execute(update(principals_t).where(principals_t.c.name == name)
                         .values(disabled=True))  # fmt: skip
        return self.revoke(name)

    def _oversight_ok(self, p: Principal, statement: str | None) -> bool:
        """Whether a stored oversight principal still has a valid root statement
        (a row written around :meth:`add` has none)."""
        key = f"{p.attributes()}|{statement}"
        if key not in self._statements:
            try:
                self.check_statement(p, statement)
                self._statements[key] = True
            except PrincipalError:
                self._statements[key] = False
        return self._statements[key]

    def get(self, name: str) -> Principal:
        if not _NAME.fullmatch(name):  # (not a name one could register: nothing to look up)
            raise UnknownPrincipal(f"no principal named {name[:80]!r}")
        with self.db.read() as conn:
            row = conn.execute(select(principals_t).where(principals_t.c.name == name)).first()
        if row is None:
            raise UnknownPrincipal(f"no principal named {name!r}")
        return _principal(row)

    def list(self) -> list[tuple[Principal, int]]:
        """Every principal with its count of live tokens."""
        return [(p, len(tokens)) for p, tokens in self.holders()]

    def holders(self) -> list[tuple[Principal, list[TokenInfo]]]:
        """Every principal (by name) with its live tokens, oldest first."""
        live: dict[str, list[TokenInfo]] = {}
        with self.db.read() as conn:
            principals = conn.execute(select(principals_t).order_by(principals_t.c.name)).all()
            q = select(tokens_t).where(tokens_t.c.revoked_at.is_(None))
            for r in conn.execute(q.order_by(tokens_t.c.created_at)):
                info = TokenInfo(r.id, r.principal, r.created_at, r.expires_at, None)
                if info.live:
                    live.setdefault(r.principal, []).append(info)
        return [(_principal(r), live.get(r.name, [])) for r in principals]

    def issue_token(self, name: str, ttl: timedelta = DEFAULT_TTL) -> str:
        """A new bearer token for ``name`` (only its hash is kept)."""
        if ttl <= timedelta(0):
            raise PrincipalError("a token's lifetime must be positive")
        p = self.get(name)
        if p.disabled:
            raise PrincipalError(f"principal {name!r} is disabled")
        tid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.write() as conn:
            conn.execute(
                insert(tokens_t).values(
                    id=tid,
                    principal=name,
                    hash=_hash(secret),
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return f"crt_{tid}_{secret}"

    def tokens(self, name: str) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(tokens_t).where(tokens_t.c.principal == name).order_by(tokens_t.c.created_at)
            ).all()
        return [
            TokenInfo(r.id, r.principal, r.created_at, r.expires_at, r.revoked_at) for r in rows
        ]

    def revoke(self, name: str, token_id: str | None = None) -> int:
        """Revoke one token of ``name`` or all of them; returns how many."""
        self.get(name)
        with self.db.write() as conn:
            n = self.revoke_on(conn, name, None if token_id is None else [token_id])
        self._verified.clear()
        if token_id is not None and n == 0:
            raise PrincipalError(f"{name!r} has no live token {token_id!r}")
        return n

    def revoke_on(self, conn: Connection, name: str, token_ids: list[str] | None) -> int:
        """Revoke ``name``'s live tokens (those of ``token_ids``, or all) in the
        caller's transaction (with the ledger entry that records it); the
        caller then calls :meth:`forget_verified`."""
        q = update(tokens_t).where(tokens_t.c.principal == name, tokens_t.c.revoked_at.is_(None))
        if token_ids is not None:
            q = q.where(tokens_t.c.id.in_(token_ids))
        return int(conn.execute(q.values(revoked_at=datetime.now(UTC))).rowcount)

    def forget_subject(self, user_id: str) -> int:
        """After a user's data is erased: revoke every token of the principals
        that are that user (every process stops accepting them within the
        revocation check) and delete those principals, so no row links a
        principal or a token to the erased id. Returns how many principals."""
        now = datetime.now(UTC)
        with self.db.write() as conn:
            names = list(
                conn.execute(
                    select(principals_t.c.name).where(principals_t.c.subject == user_id)
                ).scalars()
            )
            if names:
                conn.execute(
                    update(tokens_t)
                    .where(tokens_t.c.principal.in_(names), tokens_t.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                conn.execute(principals_t.delete().where(principals_t.c.name.in_(names)))
        self._verified.clear()
        return len(names)

    def forget_verified(self) -> None:
        """Forget every remembered token now (another node revoked some: the
        next request with any token is verified against the database)."""
        self._verified.clear()
        self._revocations_at = float("-inf")

    def _check_revocations(self) -> None:
        """Forget every remembered token if any token was revoked, or a principal
        added, removed or disabled, since the last look (two small aggregates,
        at most every ``revocation_check`` seconds: a change made in another
        process takes effect here within that time)."""
        if time.monotonic() - self._revocations_at < self.revocation_check:
            return
        with self.db.read_latest() as conn:
            seen = tuple(
                conn.execute(
                    select(func.count(), func.max(tokens_t.c.revoked_at)).where(
                        tokens_t.c.revoked_at.is_not(None)
                    )
                ).one()
            ) + tuple(  # principals added, removed or disabled in another process
                conn.execute(
                    select(
                        func.count(),
                        func.max(principals_t.c.created_at),
                        func.sum(case((principals_t.c.disabled, 1), else_=0)),
                    )
                ).one()
            )
        if seen != self._revocations:
            self._verified.clear()
            self._revocations = seen
        self._revocations_at = time.monotonic()

    def recently_verified(self, token: str) -> Principal | None:
        """The principal of a token verified less than ``auth_ttl`` ago, while
        revocations were looked at recently (no database read: safe to call on
        an event loop), else None."""
        if time.monotonic() - self._revocations_at >= self.revocation_check:
            return None
        hit = self._verified.get(hashlib.sha256(token.encode()).hexdigest())
        if hit is not None and hit[0] > time.monotonic() and hit[1] > datetime.now(UTC):
            return hit[2]
        return None

    def authenticate(self, token: str | None) -> Principal:
        """The principal a bearer token belongs to, or :class:`Unauthenticated`."""
        if not token:
            raise Unauthenticated(
                "this endpoint needs a bearer token",
                hint="send 'Authorization: Bearer crt_…' (cleanroom principal token NAME)",
            )
        self._check_revocations()
        hit = self.recently_verified(token)
        if hit is not None:
            return hit
        memo = hashlib.sha256(token.encode()).hexdigest()
        m = _TOKEN.match(token)
        if not m:
            raise Unauthenticated("the bearer token is malformed")
        tid, secret = m.groups()
        with self.db.read_latest() as conn:
            row = conn.execute(
                select(tokens_t.c.hash, tokens_t.c.expires_at, tokens_t.c.revoked_at, principals_t)
                .join(principals_t, principals_t.c.name == tokens_t.c.principal)
                .where(tokens_t.c.id == tid)
            ).first()
        if row is None or not hmac.compare_digest(row.hash, _hash(secret)):
            raise Unauthenticated("the bearer token is not valid")
        p = self.check_token_row(row)
        if self.auth_ttl > 0:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[memo] = (time.monotonic() + self.auth_ttl, as_utc(row.expires_at), p)
        return p

    def check_token_row(self, row: Any) -> Principal:
        """The principal of a token row joined with its principal's row, if the
        token is live and the principal may act (else :class:`Unauthenticated`)."""
        if row.revoked_at is not None:
            raise Unauthenticated("the bearer token was revoked")
        if as_utc(row.expires_at) <= datetime.now(UTC):
            raise Unauthenticated("the bearer token has expired", hint="ask for a new token")
        p = _principal(row)
        if p.disabled:
            raise Unauthenticated(f"principal {p.name!r} is disabled")
        if p.org == "oversight" and not self._oversight_ok(p, row.statement):
            raise Unauthenticated(
                f"principal {p.name!r} claims the oversight body but no statement of its "
                "root key adds it"
            )
        return p


def token_id(token: str) -> str | None:
    """The id part of a well-formed token (None if it is not one)."""
    m = _TOKEN.match(token)
    return m.group(1) if m else None


def _principal(row: Any) -> Principal:
    """A Principal from a row holding the principal columns."""
    return Principal(**{f.name: getattr(row, f.name) for f in fields(Principal)})
