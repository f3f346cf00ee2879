"""The release registry on a real ledger (SQLite and PostgreSQL): reviewers
with their own keys, signed reviews checked on arrival, the policy's verdict,
deployments refused without approval (and the refusal on record), rollback,
"what was live at T"; and the oversight's replay from ledger entries and
public keys alone, which catches a forged review and an unapproved deploy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cleanroom.ledger.authority import sign_root_statement
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
from tests.support import ORIGIN

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
        keys = {n: generate_signer(n) for n in ("ana", "olaf", "ola", "pia", "root")}
        r = Registry(
            db, log, ReleasePolicy(k=2, operator_required=1), clock=Clock(),
            oversight_root=keys["root"].verifier, origin=ORIGIN,
        )  # fmt: skip
        r.pin_oversight_root(keys["root"].verifier.vkey, by="init")
        r.add_reviewer("ana", "operator", keys["ana"].verifier.vkey, added_by="init")
        r.add_reviewer("olaf", "operator", keys["olaf"].verifier.vkey, added_by="init")
        ola = keys["ola"].verifier.vkey
        r.add_reviewer("ola", "oversight", ola, added_by="init", statement=grant(keys, "ola", ola))
        yield r, log, keys


def grant(
    keys: dict[str, Signer],
    name: str,
    vkey: str | None,
    *,
    action: str = "add",
    signer: str = "root",
    origin: str = ORIGIN,
):
    """A statement of the oversight root (or of ``signer``) about reviewer ``name``."""
    return sign_root_statement(
        keys[signer], origin=origin, action=action, subject="reviewer", name=name,
        vkey=vkey if action == "add" else None,
    )  # fmt: skip


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
    assert r.review(A, signed(k["ana"], A, org="operator")).missing == (
        "1 more approval(s); 1 more from the oversight body"
    )
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


def test_the_operator_never_approves_a_model_or_policy_alone(reg) -> None:
    """Two operator reviewers satisfy 2-of-n, but models, policies and source
    need the oversight body; infrastructure manifests do not."""
    r, _, k = reg
    for kind, digest in (("model", A), ("policy", B), ("source", C)):
        r.submit(kind, kind, digest, {}, submitted_by="pat", org="platform")
        r.review(digest, signed(k["ana"], digest, org="operator", kind=kind))
        v = r.review(digest, signed(k["olaf"], digest, org="operator", kind=kind))
        assert not v.approved and v.missing == "1 more from the oversight body"
        with pytest.raises(NotApproved, match="oversight body"):
            r.deploy(digest, by="ana")
    infra = "sha256:" + "d4" * 32
    r.submit("infra", "manifest", infra, {}, submitted_by="pat", org="platform")
    r.review(infra, signed(k["ana"], infra, org="operator", kind="infra"))
    assert r.review(infra, signed(k["olaf"], infra, org="operator", kind="infra")).approved


def test_only_the_oversight_root_makes_oversight_reviewers(reg, db: Database) -> None:
    """The operator cannot mint the oversight body's identity: no statement, a
    statement of another key, for another name, key or log, or a row written
    straight into the database — none makes an oversight reviewer."""
    r, log, k = reg
    mallory = generate_signer("mallory")
    vkey = mallory.verifier.vkey
    before = log.store.sequenced_size()
    k["fake-root"] = generate_signer("root")
    cases = [
        (None, "only by a statement"),
        (grant(k, "mallory", vkey, signer="fake-root"), "does not verify|no signature"),
        (grant(k, "ola", k["ola"].verifier.vkey), "not add reviewer 'mallory'"),
        (grant(k, "mallory", generate_signer("mallory").verifier.vkey), "another vkey"),
        (grant(k, "mallory", vkey, origin="other.example/log"), "not 'test.example/log'"),
        (grant(k, "mallory", None, action="remove"), "not add reviewer"),
    ]
    for signed_by_whom, message in cases:
        with pytest.raises(ReviewerError, match=message):
            r.add_reviewer("mallory", "oversight", vkey, added_by="admin",
                           statement=signed_by_whom)  # fmt: skip
    assert log.store.sequenced_size() == before
    # a row written around the registry does not review anything
    from cleanroom.release.registry import reviewers_t

    with db.write() as conn:
        conn.execute(reviewers_t.insert().values(
            name="mallory", org="oversight", vkey=vkey, added_ms=0, ledger_index=0))  # fmt: skip
    assert r.reviewer("mallory") is None
    r.submit("model", "m", A, {}, submitted_by="pat", org="platform")
    r.review(A, signed(k["ana"], A, org="operator"))
    with pytest.raises(ReviewerError, match="not signed by a registered reviewer"):
        r.review(A, signed(mallory, A, org="oversight"))
    # ...and an entry appended around it is flagged by the replay from the ledger
    log.append({"type": "release.reviewer", "v": 1, "reviewer": "mallory", "org": "oversight",
                "vkey": vkey, "added_by": "admin", "at_ms": 1})  # fmt: skip
    problems = [p for _, p in replay(entries(log), origin=ORIGIN).problems]
    assert any("oversight reviewer 'mallory'" in p for p in problems), problems


def test_oversight_reviewers_leave_only_by_the_root(reg) -> None:
    r, log, k = reg
    with pytest.raises(ReviewerError, match="only by a statement"):
        r.remove_reviewer("ola", by="admin")
    assert r.reviewer("ola") is not None
    r.remove_reviewer("ola", by="admin", statement=grant(k, "ola", None, action="remove"))
    assert r.reviewer("ola") is None
    r.remove_reviewer("olaf", by="admin")  # the operator's own reviewers are the operator's
    assert replay(entries(log), origin=ORIGIN).problems == []
