"""Ledger entries: canonical JSON bodies (RFC 8785) and salted commitments.

An entry is a JSON object with a ``type`` (what happened, e.g.
``"access.decision"``) and ``v`` (the schema version of that type). Its body is
the RFC 8785 canonical encoding, so anyone re-encoding the same object gets the
same bytes and the same leaf hash. Entries never carry personal data: a
data subject appears as a salted commitment (:func:`commitment`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import rfc8785

from cleanroom.ledger.errors import EntryError

# Entry bundles use a uint16 length prefix (C2SP tlog-tiles).
MAX_ENTRY_BYTES = 65535
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
_SAFE_INT = 2**53 - 1
_COMMIT_DOMAIN = b"cleanroom/commitment/v1\n"


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) encoding of ``value``.

    Objects made only of strings, safe integers, booleans, null, lists and
    objects with BMP keys — nearly every ledger entry — take a fast path through
    the standard library that yields exactly the JCS bytes (property-tested
    against the ``rfc8785`` package); everything else goes through ``rfc8785``.
    """
    if _simple(value, 0):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
            "utf-8"
        )
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EntryError(f"value cannot be canonicalised as JSON: {exc}") from exc


def _simple(v: Any, depth: int) -> bool:
    if depth > 64:
        return False
    t = type(v)
    if t is str:
        return _bmp_no_surrogates(v)
    if t is bool or v is None:
        return True
    if t is int:
        return -_SAFE_INT <= v <= _SAFE_INT
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or not _bmp_no_surrogates(k) or not _simple(x, depth + 1):
                return False
        return True
    if t is list:
        return all(_simple(x, depth + 1) for x in v)
    return False


def _bmp_no_surrogates(s: str) -> bool:
    # Key order differs between code points and UTF-16 units only beyond the BMP,
    # and lone surrogates are not valid I-JSON; both go to the slow path.
    return s.isascii() or all(c < "\ud800" or "\ue000" <= c <= "\uffff" for c in s)


# Entry types the clean room's own components write (a type is reserved when
# its first dotted part is one of these). The public append API refuses them:
# only the component that decides writes its decision, so an operator service
# with a ledger token cannot forge a review, a deployment, an approval, a
# deletion or an access decision. The oversight monitor checks what these
# entries carry (signatures, registrations) itself.
RESERVED_NAMESPACES = (
    "access", "audit", "boost", "deletion", "egress", "feed", "model", "oversight",
    "principal", "privacy", "release", "screen",
)  # fmt: skip


def reserved_type(etype: str) -> bool:
    """Whether ``etype`` is written only by the clean room's components."""
    return etype.split(".", 1)[0] in RESERVED_NAMESPACES


def encode_entry(entry: dict[str, Any]) -> bytes:
    """Validate an entry object and return its canonical body."""
    if not isinstance(entry, dict):
        raise EntryError("a ledger entry must be a JSON object")
    etype = entry.get("type")
    if not isinstance(etype, str) or not TYPE_RE.match(etype) or len(etype) > 100:
        raise EntryError(
            "entry needs a 'type': a lowercase dotted name such as 'access.decision'",
            hint=f"got {etype!r}",
        )
    version = entry.get("v")
    if type(version) is not int or not 1 <= version <= 1_000_000:
        raise EntryError("entry needs 'v': its schema version, a positive integer")
    body = canonical_json(entry)
    if len(body) > MAX_ENTRY_BYTES:
        raise EntryError(
            f"entry is {len(body)} bytes; the most an entry bundle can carry is {MAX_ENTRY_BYTES}"
        )
    return body


def decode_entry(body: bytes) -> dict[str, Any]:
    """Parse an entry body back into an object (checks that it is canonical)."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryError(f"entry body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EntryError("entry body is not a JSON object")
    if canonical_json(value) != body:
        raise EntryError("entry body is not in RFC 8785 canonical form")
    return value


def parse_entry_json(text: str | bytes) -> bytes:
    """Parse one JSON entry as submitted (any formatting) and return its canonical body."""
    try:
        value = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise EntryError(f"entry is not valid JSON: {msg}") from None
    return encode_entry(value)


def commitment(salt: bytes, identifier: str, kind: str = "subject") -> str:
    """A salted commitment to an identifier: ``c1:`` + hex HMAC-SHA256(salt, kind, id).

    The salt stays in the vault beside the data subject; deleting it makes every
    ledger entry that mentions the commitment unlinkable to the person while the
    entries stay verifiable (DESIGN invariant 3).
    """
    if len(salt) < 16:
        raise EntryError("a commitment salt must be at least 16 random bytes")
    msg = _COMMIT_DOMAIN + kind.encode() + b"\n" + identifier.encode("utf-8")
    return "c1:" + hmac.new(salt, msg, hashlib.sha256).hexdigest()
