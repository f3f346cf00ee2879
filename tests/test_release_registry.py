"""The release registry on a real ledger (SQLite and PostgreSQL): reviewers
with their own keys, signed reviews checked on arrival, the policy's verdict,
deployments refused without approval (and the refusal on record), rollback,
"what was live at T"; and the oversight's replay from ledger entries and
public keys alone, which catches a forged review and an unapproved deploy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cleanroom.ledger.log import Log
from cleanroom.ledger.note import Signer, generate_signer
from cleanroom.release import (
    INTOTO_PAYLOAD_TYPE,
    REVIEW_TYPE,
    AttestationError,
    NotApproved,
    ReleaseError,
    ReleasePolicy,
    ReviewerError,
    UnknownArtifact,
    dsse,
    review,
    statement,
    subject,
)
from cleanroom.release.intoto import encode
from cleanroom.release.registry import Registry
from cleanroom.release.verify import ledger_entries, replay
from cleanroom.storage import Database

from .conftest import ORIGIN

A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32
C = "sha256:" + "c3" * 32


class Clock:
    def __init__(self) -> None:
        self.t = 1_790_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def reg(db: Database, log_signer: Signer) -> Iterator[tuple[Registry, Log, dict[str, Signer]]]:
    with Log(db, ORIGIN, log_signer, interval=0.05).start() as log:
        r = Registry(db, log, ReleasePolicy(k=2, operator_required=1), clock=Clock())
        keys = {n: generate_signer(n) for n in ("ana", "olaf", "ola", "pia")}
        r.add_reviewer("ana", "operator", keys["ana"].verifier.vkey, added_by="init")
        r.add_reviewer("olaf", "operator", keys["olaf"].verifier.vkey, added_by="init")
        r.add_reviewer("ola", "oversight", keys["ola"].verifier.vkey, added_by="init")
        yield r, log, keys


def signed(key: Signer, digest: str, *, org: str, decision: str = "approve", kind: str = "model"):
    pred = review(reviewer=key.name, org=org, decision=decision, kind=kind, comment="", at_ms=0)
    stmt = statement([subject("artifact", digest)], REVIEW_TYPE, pred)
    return dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [key])


def entries(log: Log) -> list[tuple[int, dict]]:
    return ledger_entries(log.store)


def test_approval_deploy_rollback_and_live_at(reg) -> None:
    r, log, k = reg
    r.submit("model", "weights v1", A, {"weights": {"like": 2}}, submitted_by="pat", org="platform")
    with pytest.raises(NotApproved, match="2 more approval"):
        r.deploy(A, by="ana")
    assert r.review(A, signed(k["ana"], A, org="operator")).missing == "1 more approval(s)"
    assert r.review(A, signed(k["ola"], A, org="oversight")).approved
    first = r.deploy(A, by="ana")
    r.submit("model", "weights v2", B, {"weights": {"like": 3}}, submitted_by="pat", org="platform")
    r.review(B, json.dumps(signed(k["olaf"], B, org="operator")))  # JSON text works too
    r.review(B, signed(k["ola"], B, org="oversight"))
    second = r.deploy(B, by="olaf")
    back = r.rollback("model", by="ana")
    assert back.artifact == A and back.rollback
    assert r.live("model").artifact == A
    assert r.live("model", at_ms=second.deployed_ms).artifact == B
    assert r.live("model", at_ms=first.deployed_ms - 1) is None
    # the refusal is on the ledger too; the oversight replay agrees on everything
    view = replay(entries(log), r.policy)
    assert view.problems == []
    assert view.verdict(A).approved and view.verdict(B).approved
    assert view.live("model", at_ms=second.deployed_ms)["artifact"] == B
    assert view.live("model")["artifact"] == A
    kinds = [e["type"] for _, e in entries(log)]
    assert kinds.count("release.refused") == 1 and kinds.count("release.deployed") == 3


def test_self_parent_and_vetoed_approvals_never_deploy(reg) -> None:
    r, _, k = reg
    # ana submits and approves her own artifact: does not count
    r.submit("policy", "policies", A, {"files": []}, submitted_by="ana", org="operator")
    r.review(A, signed(k["ana"], A, org="operator", kind="policy"))
    v = r.review(A, signed(k["ola"], A, org="oversight", kind="policy"))
    assert not v.approved and "submitted" in v.ignored[0][1]
    with pytest.raises(NotApproved):
        r.deploy(A, by="olaf")
    # the parent cannot even register a reviewer, and its signature counts for nothing
    with pytest.raises(ReviewerError, match="parent"):
        r.add_reviewer("pia", "parent", k["pia"].verifier.vkey, added_by="init")
    r.submit("model", "boost", B, {}, submitted_by="pat", org="parent")
    with pytest.raises(ReviewerError, match="not signed by a registered reviewer"):
        r.review(B, signed(k["pia"], B, org="parent"))
    r.review(B, signed(k["ana"], B, org="operator"))
    assert r.review(B, signed(k["ola"], B, org="oversight", decision="reject")).vetoed_by == (
        "ola",
    )
    with pytest.raises(NotApproved, match="rejected by ola"):
        r.deploy(B, by="ana")
    assert r.live("model") is None and r.live("policy") is None


def test_bad_reviews_are_refused_and_change_nothing(reg) -> None:
    r, log, k = reg
    r.submit("model", "m", A, {}, submitted_by="pat", org="platform")
    r.submit("model", "other", C, {}, submitted_by="pat", org="platform")
    before = log.store.sequenced_size()
    forged = signed(k["ana"], A, org="operator")
    forged["signatures"][0]["sig"] = signed(k["ana"], C, org="operator")["signatures"][0]["sig"]
    cases = [
        (forged, AttestationError, "no signature verifies"),
        (signed(k["ana"], C, org="operator"), AttestationError, "not about artifact"),
        (signed(k["ana"], A, org="oversight"), ReviewerError, "reviews for 'operator'"),
        (signed(k["ana"], A, org="operator", kind="policy"), AttestationError, "policy artifact"),
        ("{not json", AttestationError, "not JSON"),
        (signed(generate_signer("ana"), A, org="operator"), AttestationError, "no signature"),
        (signed(generate_signer("stranger"), A, org="operator"), ReviewerError, "registered"),
    ]
    for env, error, message in cases:
        with pytest.raises(error, match=message):
            r.review(A, env)
    with pytest.raises(UnknownArtifact):
        r.review(B, signed(k["ana"], B, org="operator"))
    assert r.reviews(A) == [] and log.store.sequenced_size() == before
    with pytest.raises(ReleaseError, match="already submitted"):
        r.submit("model", "m", A, {}, submitted_by="pat", org="platform")
    with pytest.raises(ReleaseError, match="kind"):
        r.submit("firmware", "m", B, {}, submitted_by="pat", org="platform")
    with pytest.raises(AttestationError, match="sha256"):
        r.submit("model", "m", "md5:00", {}, submitted_by="pat", org="platform")
    with pytest.raises(ReviewerError, match="signed-note"):
        r.add_reviewer("zed", "operator", "zed+nothex+AAAA", added_by="init")
    with pytest.raises(ReviewerError, match="named 'ana'"):
        r.add_reviewer("zed", "operator", k["ana"].verifier.vkey, added_by="init")
    with pytest.raises(ReviewerError, match="already"):
        r.add_reviewer("ana", "operator", k["ana"].verifier.vkey, added_by="init")
    with pytest.raises(ReleaseError, match="ever deployed"):
        r.rollback("model", by="ana")


def test_replay_catches_forged_reviews_and_unapproved_deploys(reg) -> None:
    r, log, k = reg
    r.submit("model", "m", A, {}, submitted_by="pat", org="platform")
    r.review(A, signed(k["ana"], A, org="operator"))
    r.review(A, signed(k["ola"], A, org="oversight"))
    r.deploy(A, by="ana")
    good = entries(log)
    assert replay(good).problems == []
    # an operator who controls the database appends a deployment of an artifact
    # nobody approved, and a review whose signature is someone else's
    r.submit("model", "sneaky", B, {}, submitted_by="pat", org="platform")
    fake = signed(k["olaf"], B, org="operator")
    log.append(
        {
            "type": "release.review",
            "v": 1,
            "artifact": B,
            "reviewer": "ana",
            "org": "operator",
            "decision": "approve",
            "envelope": fake,
            "at_ms": 1,
        }
    )
    log.append(
        {
            "type": "release.deployed",
            "v": 1,
            "artifact": B,
            "kind": "model",
            "by": "x",
            "rollback": False,
            "at_ms": 2,
        }
    )
    problems = [p for _, p in replay(entries(log)).problems]
    assert any("review by ana does not verify" in p for p in problems)
    assert any(f"deployed {B} without approval" in p for p in problems)
    # a verifier that pins its own keys refuses a registration with another key
    pinned = replay(good, pinned={"ana": generate_signer("ana").verifier.vkey})
    assert any("not pinned" in p for _, p in pinned.problems)
