"""Release formats: DSSE envelopes (the spec's PAE, signatures that verify
with the public key alone, tampering and malformed input refused), in-toto
statements with SLSA provenance and review predicates, Go-compatible dirhash
digests of file sets, and the release policy (k of n, an operator approval,
the parent never counts, no self-approval, a rejection vetoes). An
independent Go program (crypto/ed25519, x/mod's note and dirhash) accepts our
envelopes and digests."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from cleanroom.ledger.note import ALG_COSIGNATURE_V1, generate_signer
from cleanroom.release import (
    INTOTO_PAYLOAD_TYPE,
    PROVENANCE_TYPE,
    REVIEW_TYPE,
    AttestationError,
    ReleaseError,
    ReleasePolicy,
    Review,
    dsse,
    files_digest,
    h1,
    pae,
    parse_statement,
    provenance,
    review,
    statement,
    subject,
    tree_files,
)
from cleanroom.release.intoto import encode, subject_digests
from tests.support_go import needs_go, run_go

DIGEST = "sha256:" + "ab" * 32


def test_pae_matches_the_dsse_specification() -> None:
    # the example of the DSSE protocol document
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_envelope_verifies_with_the_public_key_alone() -> None:
    alice, bob = generate_signer("alice"), generate_signer("bob")
    stmt = statement([subject("model", DIGEST)], REVIEW_TYPE, {"x": 1})
    env = dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [alice, bob])
    # what travels is JSON; only public keys are needed to check it
    body, good = dsse.verify(json.dumps(env), [alice.verifier])
    assert json.loads(body) == stmt and good == [alice.verifier]
    _, both = dsse.verify(env, [bob.verifier, alice.verifier])
    assert set(both) == {alice.verifier, bob.verifier}


def test_tampered_or_foreign_envelopes_are_refused() -> None:
    alice, mallory = generate_signer("alice"), generate_signer("mallory")
    env = dsse.sign(b'{"a":1}', INTOTO_PAYLOAD_TYPE, [alice])
    tampered = {**env, "payload": base64.b64encode(b'{"a":2}').decode()}
    with pytest.raises(AttestationError, match="no signature verifies"):
        dsse.verify(tampered, [alice.verifier])
    with pytest.raises(AttestationError, match="no signature verifies"):
        dsse.verify(env, [mallory.verifier])  # the wrong key
    # a key with alice's name but other key material does not verify either
    impostor = generate_signer("alice")
    with pytest.raises(AttestationError):
        dsse.verify(env, [impostor.verifier])
    # the type is signed too: the same signature cannot pass as another type
    retyped = {**env, "payloadType": "application/json"}
    with pytest.raises(AttestationError, match="no signature verifies"):
        dsse.verify(retyped, [alice.verifier], payload_type="application/json")
    with pytest.raises(AttestationError, match="payloadType"):
        dsse.verify(retyped, [alice.verifier])


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "JSON object"),
        ({"payload": "e30=", "signatures": [{"sig": "AA=="}]}, "payloadType"),
        ({"payloadType": "t", "signatures": [{"sig": "AA=="}]}, "payload"),
        ({"payloadType": "t", "payload": "e30=", "signatures": []}, "no signatures"),
        ({"payloadType": "t", "payload": "e30=", "signatures": ["x"]}, "base64 'sig'"),
        ({"payloadType": "t", "payload": "!!", "signatures": [{"sig": "AA=="}]}, "base64"),
    ],
)
def test_malformed_envelopes_get_clear_errors(envelope, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        dsse.verify(envelope, [generate_signer("a").verifier], payload_type="t")


def test_only_ed25519_signing_keys_sign_envelopes() -> None:
    with pytest.raises(AttestationError, match="Ed25519"):
        dsse.sign(b"x", "t", [generate_signer("w", ALG_COSIGNATURE_V1)])
    with pytest.raises(AttestationError, match="at least one"):
        dsse.sign(b"x", "t", [])


def test_statements_round_trip_and_are_checked() -> None:
    prov = provenance(
        builder="https://cleanroom.example/builder",
        external={"ranking_config": DIGEST},
        materials=[("git+source", DIGEST), ("training-snapshot", "sha256:" + "cd" * 32)],
        started_ms=1_790_000_000_000,
        finished_ms=1_790_000_005_000,
        invocation="run-1",
    )
    stmt = statement([subject("model", DIGEST)], PROVENANCE_TYPE, prov)
    back = parse_statement(encode(stmt), PROVENANCE_TYPE)
    assert back == stmt and subject_digests(back) == [DIGEST]
    assert back["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-09-21T14:13:20.000Z"
    deps = back["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[1] == {"uri": "training-snapshot", "digest": {"sha256": "cd" * 32}}
    r = review(
        reviewer="ana", org="operator", decision="approve", kind="model", comment="", at_ms=0
    )
    assert parse_statement(encode(statement([subject("m", DIGEST)], REVIEW_TYPE, r)))
    bad = [
        (b"[1]", "not an in-toto statement"),
        (encode({**stmt, "subject": []}), "no subject"),
        (encode({**stmt, "subject": [{"name": "m", "digest": {"sha256": "xyz"}}]}), "sha256"),
        (encode({**stmt, "predicate": None}), "predicate"),
        (encode({**stmt, "predicate": {"buildDefinition": {}}}), "buildType"),
        (
            encode(statement([subject("m", DIGEST)], REVIEW_TYPE, {**r, "decision": "ok"})),
            "decision",
        ),
        (encode(statement([subject("m", DIGEST)], REVIEW_TYPE, {**r, "reviewer": ""})), "reviewer"),
    ]
    for payload, message in bad:
        with pytest.raises(AttestationError, match=message):
            parse_statement(payload)
    with pytest.raises(AttestationError, match="predicateType"):
        parse_statement(encode(stmt), REVIEW_TYPE)
    with pytest.raises(AttestationError, match="sha256:<64 hex>"):
        subject("m", "md5:abc")
    with pytest.raises(AttestationError, match="decision"):
        review(reviewer="a", org="operator", decision="maybe", kind="model", comment="", at_ms=0)


def test_files_digest_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("print(1)\n")
    (tmp_path / "b.cedar").write_text("permit(principal, action, resource);\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    files = tree_files(tmp_path)
    assert sorted(files) == ["b.cedar", "pkg/a.py"]  # caches are not the source
    d = files_digest(files)
    assert d.startswith("sha256:") and h1(d).startswith("h1:")
    assert files_digest({**files, "pkg/a.py": b"print(2)\n"}) != d
    assert files_digest({"pkg/c.py" if k == "pkg/a.py" else k: v for k, v in files.items()}) != d
    with pytest.raises(ReleaseError, match="not a directory"):
        tree_files(tmp_path / "missing")
    with pytest.raises(ReleaseError, match="newline"):
        files_digest({"a\nb": b""})


@needs_go
def test_go_accepts_our_envelopes_and_digests(tmp_path: Path) -> None:
    ana = generate_signer("ana.operator")
    files = {"src/a.py": b"x = 1\n", "policies/clean-room.cedar": "permit(…);\n".encode(), "z": b""}
    stmt = statement([subject("src", files_digest(files))], REVIEW_TYPE, {"k": "v"})
    env = dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [ana])
    case = {
        "envelope": env,
        "vkey": ana.verifier.vkey,
        "files": {k: base64.b64encode(v).decode() for k, v in files.items()},
    }
    program = Path(__file__).parent.parent / "interop" / "release" / "main.go"

    def go(c: dict) -> subprocess.CompletedProcess[str]:
        return run_go(program, c, tmp_path)

    run = go(case)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == h1(files_digest(files))
    case["envelope"]["payload"] = base64.b64encode(b"{}").decode()
    bad = go(case)
    assert bad.returncode != 0 and "no signature verifies" in bad.stderr


def test_release_policy_counts_only_what_may_count() -> None:
    policy = ReleasePolicy(k=2, operator_required=1)
    op, op2 = Review("ana", "operator", "approve"), Review("olaf", "operator", "approve")
    ov = Review("ola", "oversight", "approve")
    assert policy.evaluate("pat", [op, ov]).approved
    assert policy.evaluate("pat", [op, op2]).approved
    two_overseers = policy.evaluate("pat", [ov, Review("oz", "oversight", "approve")])
    assert not two_overseers.approved and "from the operator" in two_overseers.missing
    parent = policy.evaluate("pat", [op, Review("pia", "parent", "approve")])
    assert not parent.approved and parent.ignored == (
        ("pia", "reviews from the foreign parent never count"),
    )
    own = policy.evaluate("ana", [op, ov])
    assert not own.approved and own.counted == ("ola",)
    assert "submitted" in own.ignored[0][1]
    twice = policy.evaluate("pat", [op, op])
    assert not twice.approved and "first review" in twice.ignored[0][1]
    vetoed = policy.evaluate("pat", [op, ov, Review("oz", "oversight", "reject")])
    assert (
        not vetoed.approved and vetoed.vetoed_by == ("oz",) and "rejected by oz" in vetoed.missing
    )
    stranger = policy.evaluate("pat", [op, Review("rita", "researcher", "approve")])
    assert not stranger.approved and "may not review" in stranger.ignored[0][1]
    assert policy.evaluate("pat", []).missing == "2 more approval(s); 1 more from the operator"
    with pytest.raises(ValueError, match="parent"):
        ReleasePolicy(reviewer_orgs=("operator", "parent"))
    with pytest.raises(ValueError):
        ReleasePolicy(k=1, operator_required=2)
