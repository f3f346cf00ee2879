"""The deploy check: what the serving process runs before it loads a policy
set or a model configuration, at start-up and on every reload.

It loads only the live release of that kind, and only if

1. the content it is about to load hashes to the released digest (a row
   altered in the database is caught here),
2. the release policy approves the artifact, each counted review's signature
   verifying with the reviewer's registered key,
3. the deployment is on the ledger: its entry is included in a checkpoint
   signed by the log's key (inclusion proof checked here, not trusted).

Anything else is refused with a ``release.refused`` ledger entry and a
:class:`NotApproved` error; nothing is loaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cleanroom.ledger.checkpoint import parse_checkpoint
from cleanroom.ledger.entries import decode_entry
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.hashing import leaf_hash
from cleanroom.ledger.log import Log
from cleanroom.ledger.note import open_note
from cleanroom.ledger.proofs import verify_inclusion
from cleanroom.release.errors import AttestationError, NotApproved
from cleanroom.release.registry import Registry, check_review


@dataclass(frozen=True)
class Loaded:
    """What the check let through, and the evidence for it."""

    kind: str
    digest: str
    name: str
    content: dict[str, Any]
    deployment_index: int
    checkpoint_size: int
    approved_by: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "digest": self.digest,
            "name": self.name,
            "deployment_index": self.deployment_index,
            "checkpoint_size": self.checkpoint_size,
            "approved_by": list(self.approved_by),
        }


def load_live(
    registry: Registry,
    log: Log,
    kind: str,
    digest_of: Callable[[dict[str, Any]], str],
    *,
    by: str = "deploy-check",
    timeout: float = 10.0,
) -> Loaded:
    """The content of the live ``kind`` release, checked (see module doc);
    ``digest_of`` recomputes an artifact's digest from its manifest."""
    try:
        return _check(registry, log, kind, digest_of, timeout)
    except NotApproved as e:
        registry.refuse(kind, e, by=by)
        raise


def _refuse(message: str, artifact: str = "") -> NotApproved:
    return NotApproved(
        message, hint="deploy an approved release: cleanroom release deploy", artifact=artifact
    )


def _check(
    registry: Registry,
    log: Log,
    kind: str,
    digest_of: Callable[[dict[str, Any]], str],
    timeout: float,
) -> Loaded:
    live = registry.live(kind)
    if live is None:
        raise _refuse(f"no {kind} release is deployed")
    digest = live.artifact
    art = registry.get(digest)
    assert art is not None
    try:
        actual = digest_of(art.manifest)
    except Exception as e:  # unreadable content is refused like altered content
        raise _refuse(f"the {kind} release {digest} cannot be read: {e}", digest) from None
    if actual != digest:
        raise _refuse(
            f"the {kind} content on record hashes to {actual}, not to its release {digest}",
            digest,
        )
    verdict = registry.verdict(digest)
    if not verdict.approved:
        raise _refuse(f"{kind} {digest} is not approved: {verdict.missing}", digest)
    rows = registry.review_envelopes(digest)
    for name in verdict.counted:
        org_key = registry.reviewer(name)
        try:
            if org_key is None:
                raise AttestationError(f"{name} is not a registered reviewer")
            check_review(rows[name], org_key[1], digest)
        except (AttestationError, KeyError) as e:
            raise _refuse(
                f"the review by {name} of {digest} does not verify: {e}", digest
            ) from None
    # the deployment must be on the signed log
    try:
        if log.store.latest().size <= live.ledger_index:
            log.integrate()  # publish now rather than wait for the next round
        cp = log.wait_for(live.ledger_index, timeout)
        note = open_note(cp.note, [log.store.signer.verifier])
        checkpoint = parse_checkpoint(note.text)
        entry = log.store.entry(live.ledger_index)
        doc = decode_entry(entry)
        if doc.get("type") != "release.deployed" or doc.get("artifact") != digest:
            raise LedgerError("the ledger entry at that index is not this deployment")
        proof = log.store.inclusion_proof(live.ledger_index, checkpoint.size)
        verify_inclusion(
            leaf_hash(entry), live.ledger_index, checkpoint.size, proof, checkpoint.root
        )
    except LedgerError as e:
        raise _refuse(
            f"the deployment of {digest} is not proven on the ledger: {e}", digest
        ) from None
    return Loaded(
        kind,
        digest,
        art.name,
        art.manifest,
        live.ledger_index,
        checkpoint.size,
        verdict.counted,
    )
