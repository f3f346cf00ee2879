"""Console sessions: a signed-in browser stands for the token it signed in with.

Signing in to the console with an API token opens a session: a random id and
secret (the cookie ``crs_<id>_<secret>``, HttpOnly and SameSite=Strict),
stored only as a hash, bound to that token. Every request checks the token
too, so revoking the token, disabling the principal or its expiry ends the
session at once, in every process; a session also ends after
:data:`SESSION_TTL` or when its owner signs out.

Forms carry a CSRF token derived from the session's secret
(:func:`csrf_token`): a page of another site cannot read it, so it cannot
post on the signed-in user's behalf even where SameSite is not enforced.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, insert, select, update

from cleanroom.gate.principals import (
    Principal,
    Principals,
    Unauthenticated,
    as_utc,
    principals_t,
    token_id,
    tokens_t,
)
from cleanroom.storage import Database, Migration, migrate

SESSION_TTL = timedelta(hours=8)
_COOKIE = re.compile(r"^crs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

_metadata = MetaData()
sessions_t = Table(
    "gate_sessions",
    _metadata,
    Column("id", String(16), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("token", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
)


def _create(conn: Connection) -> None:
    _metadata.create_all(conn, tables=[sessions_t])


MIGRATIONS = [Migration("gate-sessions", 1, "console sessions bound to tokens", _create)]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(cookie: str) -> str:
    """The CSRF token of the session ``cookie`` (what its forms must carry)."""
    return hmac.new(cookie.encode(), b"cleanroom/console/csrf/v1", hashlib.sha256).hexdigest()


def check_csrf(cookie: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(cookie), given or "")


class Sessions:
    """Open, check and close console sessions (one table, bound to tokens)."""

    def __init__(self, db: Database, principals: Principals) -> None:
        self.db = db
        self.principals = principals
        migrate(db, MIGRATIONS)

    def open(self, token: str) -> tuple[str, Principal]:
        """A new session for a valid API token: its cookie value and principal."""
        principal = self.principals.authenticate(token)
        tid = token_id(token)
        assert tid is not None  # authenticate accepted it
        sid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.db.write() as conn:
            conn.execute(
                insert(sessions_t).values(
                    id=sid, hash=_hash(secret), token=tid, created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )  # fmt: skip
        return f"crs_{sid}_{secret}", principal

    def principal(self, cookie: str | None) -> Principal:
        """The principal a session cookie stands for (:class:`Unauthenticated`
        when there is none, or it or its token ended)."""
        m = _COOKIE.match(cookie or "")
        if not m:
            raise Unauthenticated("you are not signed in", hint="sign in with your API token")
        sid, secret = m.groups()
        with self.db.read_latest() as conn:
            row = conn.execute(
                select(
                    sessions_t.c.hash.label("session_hash"),
                    sessions_t.c.expires_at.label("session_expires"),
                    sessions_t.c.closed_at,
                    tokens_t.c.expires_at,
                    tokens_t.c.revoked_at,
                    principals_t,
                )
                .join(tokens_t, tokens_t.c.id == sessions_t.c.token)
                .join(principals_t, principals_t.c.name == tokens_t.c.principal)
                .where(sessions_t.c.id == sid)
            ).first()
        if row is None or not hmac.compare_digest(row.session_hash, _hash(secret)):
            raise Unauthenticated("this session is not valid", hint="sign in again")
        if row.closed_at is not None:
            raise Unauthenticated("you signed out of this session", hint="sign in again")
        if as_utc(row.session_expires) <= datetime.now(UTC):
            raise Unauthenticated("this session has expired", hint="sign in again")
        return self.principals.check_token_row(row)

    def close(self, cookie: str | None) -> None:
        """Sign out: the session ends (a cookie that is not a session is ignored)."""
        m = _COOKIE.match(cookie or "")
        if not m:
            return
        sid, secret = m.groups()
        with self.db.write() as conn:
            conn.execute(
                update(sessions_t)
                .where(sessions_t.c.id == sid, sessions_t.c.hash == _hash(secret))
                .values(closed_at=datetime.now(UTC))
            )
