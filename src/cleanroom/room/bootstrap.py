"""The first reviewers and releases of a clean room, and the development
oversight root that speaks for the oversight body on a developer's machine.

Bootstrapping is on the record: a clean room with no release history creates
its first two reviewers (one of the operator, one of the oversight body, their
keys in the data directory's key folder — in production each reviewer keeps
their own key and registers only the public half), submits the shipped policy
set and model configuration, approves both with both keys and deploys them.
Every step is a ledger entry anyone can verify with the reviewers' public keys
(``cleanroom release verify``)."""

from __future__ import annotations

import time
from typing import Any

from cleanroom.foryou import RankingConfig
from cleanroom.gate import Principal
from cleanroom.gate.policy import shipped
from cleanroom.ledger.authority import sign_root_statement
from cleanroom.ledger.note import Signer, generate_signer
from cleanroom.release import (
    INTOTO_PAYLOAD_TYPE,
    REVIEW_TYPE,
    ReleaseError,
    dsse,
)
from cleanroom.release.intoto import encode, review, statement, subject
from cleanroom.release.registry import Artifact
from cleanroom.room import CleanRoom
from cleanroom.room.config import DataDir
from cleanroom.room.manifests import model_manifest, policy_manifest

BOOTSTRAP_REVIEWERS = (("operator-reviewer", "operator"), ("oversight-reviewer", "oversight"))


def reviewer_key(dd: DataDir, name: str) -> Signer:
    return dd.read_key(f"reviewer-{name}")


def sign_review(
    key: Signer, art: Artifact, *, org: str, decision: str = "approve", comment: str = ""
) -> dict[str, Any]:
    """A reviewer's signed review of an artifact (a DSSE envelope)."""
    pred = review(
        reviewer=key.name,
        org=org,
        decision=decision,
        kind=art.kind,
        comment=comment,
        at_ms=int(time.time() * 1000),
    )
    stmt = statement([subject(art.name, art.digest)], REVIEW_TYPE, pred)
    return dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [key])


ROOT_KEY = "oversight-root"


def dev_oversight_root(room: CleanRoom, dd: DataDir) -> Signer | None:
    """The oversight root key kept in the data directory, if this clean room
    has one. ``cleanroom init`` without ``--oversight-vkey`` (the demo, a
    developer's machine) makes one there and pins it; a clean room whose
    oversight body gave its own public key has none."""
    cfg = room.config
    if cfg.oversight_vkey is None:  # made and put on the record at once
        signer = generate_signer(ROOT_KEY)
        dd.write_key(ROOT_KEY, signer)
        cfg.oversight_vkey = signer.verifier.vkey
        dd.save(cfg)
        room.pin_oversight_root(cfg.oversight_vkey, by="init")
    if not dd.has_key(ROOT_KEY):
        return None
    signer = dd.read_key(ROOT_KEY)
    return signer if signer.verifier.vkey == cfg.oversight_vkey else None


def bootstrap(room: CleanRoom, dd: DataDir) -> bool:
    """Create the first reviewers and releases if this clean room has none
    (returns whether it did). Needs the log started.

    The oversight body's root key is put on the record first. With a root key
    in the data directory (development), its statement makes
    ``oversight-reviewer`` an oversight reviewer and both first releases are
    approved and deployed. Without it, only the operator's reviewer approves:
    the first policy set and model configuration wait for the oversight body
    (it registers its reviewer with a root statement and reviews them) and the
    server starts once they are deployed."""
    reg = room.releases
    if reg.reviewers() or reg.artifacts():
        return False
    pinned = room.config.oversight_vkey  # given at init: on the record now
    root = dev_oversight_root(room, dd)
    if pinned is not None:
        room.pin_oversight_root(pinned, by="init")
    keys = {}
    existing = {p.name for p, _ in room.principals.list()}
    juris = room.config.site.jurisdiction
    for name, org in BOOTSTRAP_REVIEWERS:
        if org == "oversight" and root is None:
            continue  # the oversight body registers its own reviewers
        if not dd.has_key(f"reviewer-{name}"):
            dd.write_key(f"reviewer-{name}", generate_signer(name))
        keys[name] = (reviewer_key(dd, name), org)
        vkey = keys[name][0].verifier.vkey
        principal = Principal(name, "person", org, "reviewer", juris, 1)
        as_reviewer = None
        if root is not None and org == "oversight":  # the development root speaks
            as_reviewer = sign_root_statement(
                root, origin=room.config.origin, action="add", subject="reviewer", name=name,
                vkey=vkey,
            )  # fmt: skip
            if name not in existing:
                add_oversight_principal(room, dd, principal)
        elif name not in existing:
            room.add_principal(principal)
        reg.add_reviewer(name, org, vkey, added_by="init", statement=as_reviewer)
    bundle = shipped()
    cfg = RankingConfig.shipped()
    arts = [
        reg.submit(
            "policy",
            "shipped policy set",
            bundle.version,
            policy_manifest(bundle),
            submitted_by="init",
            org="operator",
        ),
        reg.submit(
            "model",
            "shipped model configuration",
            cfg.digest(),
            model_manifest(cfg),
            submitted_by="init",
            org="operator",
        ),
    ]
    for art in arts:
        for key, org in keys.values():
            reg.review(art.digest, sign_review(key, art, org=org, comment="bootstrap"))
        if reg.verdict(art.digest).approved:
            reg.deploy(art.digest, by="init")
    return True


def add_oversight_principal(room: CleanRoom, dd: DataDir, principal: Principal) -> Principal:
    """Register a principal of the oversight body with a statement of the
    development root key in the data directory (the demo and tests play the
    oversight body; in production it signs with `cleanroom oversight grant`)."""
    root = dev_oversight_root(room, dd)
    if root is None:
        raise ReleaseError(
            "this clean room's oversight root key is not in its data directory",
            hint="the oversight body signs the statement: cleanroom oversight grant principal",
        )
    p = principal
    statement = sign_root_statement(
        root, origin=room.config.origin, action="add", subject="principal", name=p.name,
        kind=p.kind, role=p.role, jurisdiction=p.jurisdiction,
    )  # fmt: skip
    return room.add_principal(p, statement)
