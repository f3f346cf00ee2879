"""The oversight body's word, in a form anyone can check from the ledger alone.

Two kinds of signed documents travel in ledger entries (as DSSE envelopes,
``cleanroom.ledger.dsse``), and both the clean room and the oversight body's
monitor verify them with the functions here:

- **Root statements**, signed by the oversight body's root key (pinned at
  ``cleanroom init`` and by the monitor): the only way an oversight reviewer
  or an oversight principal is added or removed. The operator holds no part
  of that key, so it cannot mint the oversight body's identity. A statement
  is bound to one log (its ``origin``) and to one action on one name::

      {"_type": STATEMENT_TYPE, "origin": "...", "action": "add"|"remove",
       "subject": "reviewer"|"principal", "name": "...", "vkey": "..." (reviewer),
       "kind": ..., "role": ..., "jurisdiction": ... (principal), "issued_ms": ...}

- **Signed reviews** (in-toto Statement v1 with a review predicate), signed by a
  reviewer's own key: a release review (``REVIEW_TYPE``, subject the artifact)
  or a boost review (``BOOST_REVIEW_TYPE``, subject the ``boost.declared``
  entry, by the digest of its canonical JSON). Who the reviewer is and which
  organisation they review for comes from their registration on the ledger,
  never from the entry that carries the review.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cleanroom.ledger import dsse
from cleanroom.ledger.entries import canonical_json
from cleanroom.ledger.errors import EnvelopeError
from cleanroom.ledger.note import ALG_ED25519, Signer, Verifier, parse_verifier

STATEMENT_PAYLOAD_TYPE = "application/vnd.cleanroom.oversight-statement+json"
STATEMENT_TYPE = "https://cleanroom.dev/oversight-statement/v1"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
REVIEW_TYPE = "https://cleanroom.dev/release-review/v1"
BOOST_REVIEW_TYPE = "https://cleanroom.dev/boost-review/v1"
ACTIONS = ("add", "remove")
PAST = {"add": "added", "remove": "removed"}
SUBJECTS = ("reviewer", "principal")
DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class RootStatement:
    """What the oversight body's root key authorised (verified)."""

    action: str
    subject: str
    name: str
    origin: str
    issued_ms: int
    vkey: str | None = None  # a reviewer's public key
    kind: str | None = None  # a principal's kind, role and jurisdiction
    role: str | None = None
    jurisdiction: str | None = None
    digest: str = ""  # sha256 of the payload: a statement counts once

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def root_verifier(vkey: str) -> Verifier:
    """The oversight body's root public key (signed-note vkey, Ed25519)."""
    v = parse_verifier(vkey)
    if v.alg != ALG_ED25519:
        raise EnvelopeError("the oversight root key must be an Ed25519 signing key (type 0x01)")
    return v


def sign_root_statement(
    root: Signer,
    *,
    origin: str,
    action: str,
    subject: str,
    name: str,
    vkey: str | None = None,
    kind: str | None = None,
    role: str | None = None,
    jurisdiction: str | None = None,
    issued_ms: int | None = None,
) -> dict[str, Any]:
    """A statement of the oversight body's root key (a DSSE envelope)."""
    body: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "origin": origin,
        "action": action,
        "subject": subject,
        "name": name,
        "issued_ms": int(time.time() * 1000) if issued_ms is None else issued_ms,
    }
    extra = {"vkey": vkey, "kind": kind, "role": role, "jurisdiction": jurisdiction}
    body.update({k: v for k, v in extra.items() if v is not None})
    _check_statement(body)
    return dsse.sign(canonical_json(body), STATEMENT_PAYLOAD_TYPE, [root])


def verify_root_statement(envelope: Any, root: Verifier, *, origin: str | None) -> RootStatement:
    """The statement ``envelope`` carries, after checking the root key signed it
    and that it is about the log ``origin`` (None: a verifier that reads one
    log only); EnvelopeError naming the defect otherwise."""
    payload, _ = dsse.verify(envelope, [root], payload_type=STATEMENT_PAYLOAD_TYPE)
    try:
        body = json.loads(payload)
    except ValueError as e:
        raise EnvelopeError(f"the statement is not JSON: {e}") from None
    _check_statement(body)
    if origin is not None and body["origin"] != origin:
        raise EnvelopeError(
            f"the statement is for the log {body['origin']!r}, not {origin!r}",
            hint="the oversight body signs statements for one clean room",
        )
    fields = ("vkey", "kind", "role", "jurisdiction")
    return RootStatement(
        body["action"], body["subject"], body["name"], body["origin"], int(body["issued_ms"]),
        *(body.get(k) for k in fields), digest=hashlib.sha256(payload).hexdigest(),
    )  # fmt: skip


def require_statement(
    statement: Any,
    root: Verifier | None,
    *,
    origin: str | None,
    action: str,
    subject: str,
    name: str,
    what: str,
    **want: Any,
) -> RootStatement:
    """The root's statement doing ``action`` to ``subject`` ``name`` (with the
    fields ``want``), verified — what the clean room asks before it adds or
    removes an oversight reviewer or principal; EnvelopeError saying what is
    missing otherwise (``what`` names them in the message)."""
    if root is None:
        raise EnvelopeError(
            "this clean room has no oversight root key pinned",
            hint="cleanroom init --oversight-vkey VKEY",
        )
    if statement is None:
        raise EnvelopeError(
            f"{what} is {PAST[action]} only by a statement signed by the oversight body's root key",
            hint=f"cleanroom oversight grant {subject} {name} … (run by the oversight body), "
            "then --statement FILE",
        )
    try:
        st = verify_root_statement(statement, root, origin=origin)
    except EnvelopeError as e:
        raise EnvelopeError(f"the oversight statement does not hold: {e}") from None
    if (st.action, st.subject, st.name) != (action, subject, name):
        raise EnvelopeError(
            f"the oversight statement authorises {st.action} {st.subject} {st.name!r}, "
            f"not {action} {subject} {name!r}"
        )
    for k, v in want.items():
        if getattr(st, k) != v:
            raise EnvelopeError(f"the oversight statement names another {k} for {name!r}")
    return st


def _check_statement(body: Any) -> None:
    if not isinstance(body, dict) or body.get("_type") != STATEMENT_TYPE:
        raise EnvelopeError(f"not an oversight statement (_type must be {STATEMENT_TYPE})")
    if body.get("action") not in ACTIONS:
        raise EnvelopeError(f"a statement's action is one of {', '.join(ACTIONS)}")
    if body.get("subject") not in SUBJECTS:
        raise EnvelopeError(f"a statement's subject is one of {', '.join(SUBJECTS)}")
    for k in ("origin", "name"):
        if not isinstance(body.get(k), str) or not body[k]:
            raise EnvelopeError(f"a statement needs {k!r}")
    if not isinstance(body.get("issued_ms"), int):
        raise EnvelopeError("a statement needs 'issued_ms' (an integer)")
    if body["subject"] == "reviewer" and body["action"] == "add":
        if not isinstance(body.get("vkey"), str):
            raise EnvelopeError("adding a reviewer names their public key ('vkey')")
        v = parse_verifier(body["vkey"])
        if v.name != body["name"]:
            raise EnvelopeError(f"the key is named {v.name!r}, not {body['name']!r}")
    if body["subject"] == "principal" and body["action"] == "add":
        for k in ("kind", "role", "jurisdiction"):
            if not isinstance(body.get(k), str) or not body[k]:
                raise EnvelopeError(f"adding a principal names its {k!r}")


# -- signed reviews --------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_digest(entry: dict[str, Any]) -> str:
    """The digest a boost review names the declaration it approves by."""
    return "sha256:" + sha256_hex(canonical_json(entry))


def sign_boost_review(
    key: Signer, *, boost: str, declared: dict[str, Any], decision: str, at_ms: int | None = None
) -> dict[str, Any]:
    """A reviewer's signed review of a declared boost (``declared`` is the
    ``boost.declared`` ledger entry)."""
    if decision not in DECISIONS:
        raise EnvelopeError(f"decision must be one of {', '.join(DECISIONS)}")
    stmt = {
        "_type": IN_TOTO_STATEMENT,
        "subject": [{"name": boost, "digest": {"sha256": entry_digest(declared)[7:]}}],
        "predicateType": BOOST_REVIEW_TYPE,
        "predicate": {
            "reviewer": key.name,
            "boost": boost,
            "decision": decision,
            "reviewedOn": int(time.time() * 1000) if at_ms is None else at_ms,
        },
    }
    return dsse.sign(canonical_json(stmt), dsse.INTOTO_PAYLOAD_TYPE, [key])


def verify_review(
    envelope: Any, reviewer: Verifier, *, predicate_type: str, subject: str
) -> dict[str, Any]:
    """The predicate of a review signed by ``reviewer`` about ``subject`` (a
    ``sha256:<hex>`` digest); EnvelopeError if the signature, the type, the
    subject or the reviewer's name does not hold."""
    payload, _ = dsse.verify(envelope, [reviewer])
    try:
        stmt = json.loads(payload)
    except ValueError as e:
        raise EnvelopeError(f"the statement is not JSON: {e}") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != IN_TOTO_STATEMENT:
        raise EnvelopeError("not an in-toto statement")
    if stmt.get("predicateType") != predicate_type:
        got = stmt.get("predicateType")
        raise EnvelopeError(f"predicateType is {got!r}, not {predicate_type!r}")
    subjects = stmt.get("subject")
    digests = [
        "sha256:" + str(s.get("digest", {}).get("sha256"))
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if subject not in digests:
        raise EnvelopeError(f"the review is not about {subject}")
    pred = stmt.get("predicate")
    if not isinstance(pred, dict) or pred.get("reviewer") != reviewer.name:
        raise EnvelopeError(f"the review does not name {reviewer.name!r} as its reviewer")
    if pred.get("decision") not in DECISIONS:
        raise EnvelopeError(f"a review's decision is one of {', '.join(DECISIONS)}")
    return pred


def reviewer_key_names(envelope: Any) -> list[str]:
    """The key names an envelope's signatures claim (``name+hash`` → name)."""
    _, _, sigs = dsse.parse(envelope)
    return sorted({k.split("+")[0] for k, _ in sigs})
