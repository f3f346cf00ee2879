"""DSSE envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse v1):
the payload and its type are signed together through the pre-authentication
encoding, so a signature over one type can never be replayed as another.

Signatures are Ed25519 with the project's signed-note keys (``ledger.note``):
an envelope signature's ``keyid`` is the key's ``name+hash`` (the same id a
note signature line carries), so a reviewer has one key for everything.

    envelope = sign(payload, PAYLOAD_TYPE, [signer])
    payload = verify(envelope, [verifier])  # -> the bytes, or EnvelopeError

It lives in the ledger because the oversight body's monitor (which imports the
ledger and nothing else of the clean room) verifies the signed reviews and
approvals that ledger entries carry; ``cleanroom.release.dsse`` re-raises its
errors as release errors.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cleanroom.ledger.errors import EnvelopeError
from cleanroom.ledger.note import ALG_ED25519, Signer, Verifier

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(v: Verifier | Signer) -> str:
    """The id a signature names its key by: ``name+hash`` (8 hex digits)."""
    return f"{v.name}+{v.key_id:08x}"


def sign(payload: bytes, payload_type: str, signers: list[Signer]) -> dict[str, Any]:
    if not signers:
        raise EnvelopeError("an envelope needs at least one signature")
    for s in signers:
        if s.alg != ALG_ED25519:
            raise EnvelopeError(f"key {s.name!r} is not an Ed25519 signing key")
    message = pae(payload_type, payload)
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": key_id(s), "sig": base64.b64encode(s.sign(message)).decode()} for s in signers
        ],
    }


def as_document(envelope: Any) -> dict[str, Any]:
    """An envelope given as JSON text (or bytes) or already parsed, as a dict."""
    if isinstance(envelope, str | bytes):
        try:
            envelope = json.loads(envelope)
        except ValueError as e:
            raise EnvelopeError(f"the envelope is not JSON: {e}") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("the envelope must be a JSON object")
    return envelope


def parse(envelope: Any) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """(payload type, payload, [(keyid, signature)]) of a well-formed envelope
    (a dict, or its JSON text); EnvelopeError naming the first defect."""
    envelope = as_document(envelope)
    ptype, payload, sigs = (envelope.get(k) for k in ("payloadType", "payload", "signatures"))
    if not isinstance(ptype, str) or not ptype:
        raise EnvelopeError("the envelope has no payloadType")
    if not isinstance(payload, str):
        raise EnvelopeError("the envelope has no base64 payload")
    if not isinstance(sigs, list) or not sigs:
        raise EnvelopeError("the envelope carries no signatures")
    try:
        body = base64.b64decode(payload, validate=True)
        out = []
        for s in sigs:
            if not isinstance(s, dict) or not isinstance(s.get("sig"), str):
                raise EnvelopeError("each signature needs a base64 'sig'")
            out.append((str(s.get("keyid", "")), base64.b64decode(s["sig"], validate=True)))
    except binascii.Error:
        raise EnvelopeError("the payload or a signature is not valid base64") from None
    return ptype, body, out


def verify(
    envelope: Any, verifiers: list[Verifier], *, payload_type: str = INTOTO_PAYLOAD_TYPE
) -> tuple[bytes, list[Verifier]]:
    """The payload and the keys (among ``verifiers``) whose signatures verify;
    AttestationError if the type differs or no signature verifies."""
    ptype, body, sigs = parse(envelope)
    if ptype != payload_type:
        raise EnvelopeError(f"payloadType is {ptype!r}, expected {payload_type!r}")
    message = pae(ptype, body)
    good: list[Verifier] = []
    for keyid, sig in sigs:
        for v in verifiers:
            if key_id(v) == keyid and v not in good and v.verify(message, sig):
                good.append(v)
    if not good:
        named = ", ".join(k for k, _ in sigs) or "none"
        raise EnvelopeError(
            f"no signature verifies with the keys given (signed by: {named})",
            hint="check the reviewer's public key, or the envelope was altered",
        )
    return body, good
