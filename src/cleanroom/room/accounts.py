"""Audit accounts: the operator provisions the oversight body's sock puppets —
user principals ``puppet-N`` (their own users, in the site's jurisdiction) and
an ingest service of the platform that reports their events like the app
does — and records it on the ledger (``audit.accounts``: which accounts are
puppets, so nobody mistakes them for people). Tokens are handed over in a file
only the oversight body reads."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cleanroom.gate import Principal
from cleanroom.storage.errors import CleanroomError

if TYPE_CHECKING:
    from cleanroom.room.assembly import CleanRoom

INGEST = "audit-ingest"
MAX_ACCOUNTS = 1000


def provision(
    room: CleanRoom, count: int, *, days: float = 7.0, by: str = "operator"
) -> dict[str, Any]:
    """``count`` puppet accounts and the ingest service, with fresh tokens:
    the document ``Accounts.read`` takes."""
    if not 1 <= count <= MAX_ACCOUNTS:
        raise CleanroomError(f"between 1 and {MAX_ACCOUNTS} audit accounts, not {count}")
    if days <= 0:
        raise CleanroomError("a token's lifetime must be positive")
    site = room.config.site.jurisdiction
    existing = {p.name for p, _ in room.principals.list()}
    wanted = [Principal(INGEST, "service", "platform", "ingest", site, 1)] + [
        Principal(f"puppet-{n}", "user", "users", "user", site, 0, f"puppet-{n}")
        for n in range(count)
    ]
    for p in wanted:
        if p.name not in existing:
            room.principals.add(p)
    ttl = timedelta(days=days)
    puppets = [
        {"user": p.subject, "token": room.principals.issue_token(p.name, ttl)} for p in wanted[1:]
    ]
    index = room.log.append(
        {
            "type": "audit.accounts",
            "v": 1,
            "time_ms": int(time.time() * 1000),
            "accounts": [p["user"] for p in puppets],
            "ingest": INGEST,
            "by": by,
            "valid_days": days,
        }
    )
    return {
        "platform_token": room.principals.issue_token(INGEST, ttl),
        "jurisdiction": site,
        "accounts": puppets,
        "ledger_index": index,
    }
