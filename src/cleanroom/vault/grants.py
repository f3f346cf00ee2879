"""Grants: the only key that opens a vault function touching protected data.

The gate decides; when it allows, it issues a :class:`Grant` naming the
principal, action, resource, subjects, purpose, obligations and the ledger
index of the decision. Grants are sealed with a secret only the vault and the
one :class:`GrantAuthority` it hands out know, so code that bypasses the gate
cannot forge one, and each vault function checks that the grant covers exactly
what it is asked to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field

from cleanroom.storage.errors import CleanroomError

# The shared vocabulary of the gate's Cedar schema and the vault.
ACTIONS = ("write", "read", "export", "delete")
RESOURCES = ("Profile", "Events", "Videos", "Aggregates", "UserData")


class AccessDenied(CleanroomError):
    """No valid grant for this access (or the gate denied it). A denial by the
    gate names the deciding rules and the decision's ledger index, which the
    API returns as fields of its problem+json."""

    status = 403
    title = "Forbidden"

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        rules: tuple[str, ...] | list[str] = (),
        ledger_index: int | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.problem_fields: dict[str, object] = {}
        if rules or ledger_index is not None:
            self.problem_fields = {"rules": list(rules), "ledger_index": ledger_index}


@dataclass(frozen=True)
class Grant:
    """The gate's permission for one access: who, what, which records, why."""

    principal: str
    action: str
    resource: str
    purpose: str
    jurisdiction: str
    subjects: frozenset[str] | None  # None: every subject of the jurisdiction
    obligations: tuple[str, ...] = ()
    decision: int | None = None  # ledger index of the decision entry
    seal: bytes = field(default=b"", repr=False)

    def _message(self) -> bytes:
        return json.dumps(
            [
                self.principal,
                self.action,
                self.resource,
                self.purpose,
                self.jurisdiction,
                None if self.subjects is None else sorted(self.subjects),
                list(self.obligations),
                self.decision,
            ]
        ).encode()

    def covers(self, subject: str) -> bool:
        return self.subjects is None or subject in self.subjects


class GrantAuthority:
    """Issues sealed grants; the vault hands exactly one out, to the gate."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, **fields: object) -> Grant:
        grant = Grant(**fields)  # type: ignore[arg-type]
        seal = hmac.new(self._key, grant._message(), hashlib.sha256).digest()
        return Grant(**{**grant.__dict__, "seal": seal})


class GrantChecker:
    """Checks that a grant was issued by this process's gate (and not forged)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._handed_out = False

    def authority(self) -> GrantAuthority:
        if self._handed_out:
            raise AccessDenied("the vault's grant authority was already handed to a gate")
        self._handed_out = True
        return GrantAuthority(self._key)

    def check(
        self,
        grant: object,
        action: str | tuple[str, ...],
        resource: str | tuple[str, ...],
        subjects: list[str] | None = None,
        jurisdiction: str | None = None,
    ) -> Grant:
        """Return the grant if it is genuine and covers this access, else raise."""
        if not isinstance(grant, Grant):
            raise AccessDenied("protected data is reached only with a grant from the gate")
        good = hmac.new(self._key, grant._message(), hashlib.sha256).digest()
        if not hmac.compare_digest(good, grant.seal):
            raise AccessDenied("the grant is forged or was altered")
        resources = (resource,) if isinstance(resource, str) else resource
        actions = (action,) if isinstance(action, str) else action
        if grant.action not in actions or grant.resource not in resources:
            raise AccessDenied(
                f"the grant is for {grant.action} {grant.resource}, "
                f"not {' or '.join(actions)} {resources[0]}"
            )
        if jurisdiction is not None and grant.jurisdiction != jurisdiction:
            raise AccessDenied("the grant is for another jurisdiction")
        for s in subjects or ():
            if not grant.covers(s):
                raise AccessDenied("the grant does not cover this data subject")
        return grant
