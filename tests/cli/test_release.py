"""`cleanroom release`: a reviewer workflow from the command line on a real
data directory — keys made and registered, a model change submitted by the
foreign parent shown in the diff, its deployment refused until two reviewers
(one of the operator) approve it with their own keys, rollback, and the
ledger-only verification; bad input is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cleanroom.api import create_app
from cleanroom.foryou import RankingConfig
from cleanroom.release import NotApproved
from tests.support import run_cli


def ok(args: list[str], dd: Path) -> str:
    r = run_cli(args, dd)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def fails(args: list[str], dd: Path, message: str) -> str:
    r = run_cli(args, dd)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    return r.stderr


def register_reviewers(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A clean room with engineers of the parent (pete) and the operator
    (rita), and reviewers rita (operator) and otto (oversight, by the root
    key's statements); the parent's pia is refused as a reviewer."""
    dd = tmp_path / "dd"
    ok(["init"], dd)
    for who, org in (("pete", "parent"), ("rita", "operator")):
        ok(["principal", "add", who, "--org", org, "--role", "engineer",
            "--jurisdiction", "US"], dd)  # fmt: skip
    # the oversight body's identity is its root key's to give, not the operator's
    otto = ["principal", "add", "otto", "--org", "oversight", "--role", "engineer",
            "--jurisdiction", "US"]  # fmt: skip
    fails(otto, dd, "only by a statement signed by the oversight body's root key")
    root = ["--root-key", str(dd / "keys" / "oversight-root.key"),
            "--origin", "cleanroom.example/log"]  # fmt: skip
    (tmp_path / "otto.json").write_text(
        ok(["oversight", "grant", "principal", "otto", "--role", "engineer", *root], dd)
    )
    ok([*otto, "--statement", str(tmp_path / "otto.json")], dd)
    keys = {}
    for name, org in (("rita", "operator"), ("otto", "oversight"), ("pia", "parent")):
        keys[name] = tmp_path / f"{name}.key"
        vkey = ok(["release", "reviewer", "keygen", name, "--out", str(keys[name])], dd).strip()
        assert (keys[name].stat().st_mode & 0o777) == 0o600
        add = ["release", "reviewer", "add", name, "--org", org, "--vkey", vkey,
               "--by", "operator-reviewer"]  # fmt: skip
        if org == "oversight":
            fails(add, dd, "only by a statement signed by the oversight body's root key")
            statement = tmp_path / f"{name}-reviewer.json"
            statement.write_text(
                ok(["oversight", "grant", "reviewer", name, "--vkey", vkey, *root], dd)
            )
            add += ["--statement", str(statement)]
        if org != "parent":
            ok(add, dd)
        else:
            fails(add, dd, "no principal")
    return dd, keys


def test_oversight_reviewers_come_from_the_root_key_and_the_parent_reviews_nothing(
    tmp_path: Path,
) -> None:
    dd, _ = register_reviewers(tmp_path)
    report = json.loads(ok(["release", "verify", "--json"], dd))
    assert report["problems"] == []
    assert report["reviewers"] == {
        "operator-reviewer": "operator",
        "oversight-reviewer": "oversight",
        "rita": "operator",
        "otto": "oversight",
    }


def test_a_parent_model_change_waits_for_the_oversight_body_and_rolls_back(
    tmp_path: Path,
) -> None:
    dd, keys = register_reviewers(tmp_path)
    # the parent quietly raises the share weight and exploration
    cfg = RankingConfig.shipped().raw
    boosted = {**cfg, "weights": {**cfg["weights"], "share": 40}, "exploration": 0.3}
    (tmp_path / "ranking.json").write_text(json.dumps(boosted))
    submitted = ok(["release", "submit", "model", str(tmp_path / "ranking.json"),
                    "--by", "pete", "--name", "engagement tweak"], dd)  # fmt: skip
    digest = submitted.strip().splitlines()[-1]
    shown = ok(["release", "diff", digest], dd)
    assert "weights.share: 4" in shown and "-> 40" in shown and "exploration: 0.02 -> 0.3" in shown
    assert "by pete (parent)" in shown and "not approved" in shown
    fails(["release", "deploy", digest, "--by", "rita"], dd, "not approved")
    # a parent key is not a reviewer; the submitter's org cannot help either
    fails(["release", "approve", digest, "--key", str(keys["pia"])], dd, "not a registered")
    v = json.loads(ok(["release", "approve", digest, "--key", str(keys["rita"])], dd))
    assert not v["approved"] and v["counted"] == ["rita"]
    # two of the operator's reviewers are not enough for a model
    op_key = str(dd / "keys" / "reviewer-operator-reviewer.key")
    v = json.loads(ok(["release", "approve", digest, "--key", op_key], dd))
    assert not v["approved"] and v["missing"] == "1 more from the oversight body"
    fails(["release", "deploy", digest, "--by", "rita"], dd, "oversight body")
    v = json.loads(ok(["release", "approve", digest, "--key", str(keys["otto"])], dd))
    assert v["approved"]
    assert "deployed model" in ok(["release", "deploy", digest, "--by", "rita"], dd)
    listed = json.loads(ok(["release", "list", "--kind", "model", "--json"], dd))
    assert [r["live"] for r in listed] == [False, True]
    report = json.loads(ok(["release", "verify", "--json"], dd))
    assert report["live"]["model"] == digest and report["problems"] == []
    assert "rolled back model" in ok(["release", "rollback", "model", "--by", "rita"], dd)
    report = json.loads(ok(["release", "verify", "--json"], dd))
    assert report["live"]["model"] == RankingConfig.shipped().digest()


def test_policy_and_source_releases_show_what_changed(tmp_path: Path) -> None:
    import cleanroom
    from cleanroom.gate.policy import shipped
    from cleanroom.room.provenance import running_source

    dd = tmp_path / "dd"
    ok(["init"], dd)
    # a policy change shows as a diff of the Cedar files
    pol = tmp_path / "policies"
    pol.mkdir()
    for name, body in shipped().files.items():
        (pol / name).write_text(
            body.replace("@id(", "// reviewed\n@id(", 1) if name.endswith(".cedar") else body
        )
    pdigest = ok(["release", "submit", "policy", str(pol), "--by", "operator-reviewer"], dd)
    assert "+// reviewed" in ok(["release", "diff", pdigest.split()[-1]], dd)
    # the code the server runs, submitted as a source release, has the digest the
    # builder writes into every model's provenance
    src = Path(cleanroom.__file__).parent
    sdigest = ok(["release", "submit", "source", str(src), "--by", "operator-reviewer"], dd)
    assert sdigest.split()[-1] == running_source()


def test_release_bad_input_is_one_line(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    ok(["init"], dd)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "weights.json").write_text('{"weights": {"like": "lots"}}')
    fails(["release", "submit", "firmware", str(tmp_path), "--by", "operator-reviewer"], dd, "kind")
    fails(["release", "submit", "model", str(tmp_path / "bad.json"),
           "--by", "operator-reviewer"], dd, "cannot read")  # fmt: skip
    fails(["release", "submit", "model", str(tmp_path / "weights.json"),
           "--by", "operator-reviewer"], dd, "ranking configuration")  # fmt: skip
    fails(["release", "submit", "model", str(tmp_path / "bad.json"), "--by", "nobody"], dd, "")
    fails(["release", "deploy", "sha256:" + "0" * 64, "--by", "x"], dd, "no artifact")
    fails(["release", "diff", "sha256:" + "0" * 64], dd, "no artifact")
    fails(
        ["release", "approve", "sha256:" + "0" * 64, "--key", str(tmp_path / "none")],
        dd,
        "cannot read",
    )
    fails(["release", "rollback", "source", "--by", "x"], dd, "ever deployed")
    fails(["release", "reviewer", "add", "z", "--org", "operator", "--vkey", "junk",
           "--by", "x"], dd, "no principal named 'z'")  # fmt: skip
    fails(["release", "reviewer", "add", "recommender", "--org", "oversight", "--vkey", "junk",
           "--by", "operator-reviewer"], dd, "not of 'oversight'")  # fmt: skip
    fails(["release", "reviewer", "add", "recommender", "--org", "operator", "--vkey", "junk",
           "--by", "operator-reviewer"], dd, "signed-note")  # fmt: skip
    assert json.loads(ok(["release", "verify", "--json"], dd))["problems"] == []
    assert json.loads(ok(["release", "models", "--json"], dd)) == []  # nothing trained yet
    fails(["release", "models", "--at", "yesterday"], dd, "ISO 8601")
    policy = json.loads(ok(["release", "list", "--kind", "policy", "--json"], dd))[0]["digest"]
    fails(["release", "evaluate", policy, "--by", "operator-reviewer"], dd, "only a model")
    fails(["release", "evaluate", policy, "--by", "x", "--split", "train"], dd, "--split")
    fails(["release", "models", "--feed", "f1"], dd, "no feed")


def test_an_outside_oversight_root_approves_the_first_releases(tmp_path: Path) -> None:
    """The oversight body keeps its root key: init pins only its public key, the
    first releases wait for the oversight body's reviewer, whom only the root
    can add; once it approved them they deploy and the server starts."""
    dd = tmp_path / "dd"
    root_key = tmp_path / "root.key"
    vkey = ok(["oversight", "root-init", "--out", str(root_key)], dd).strip()
    out = ok(["init", "--oversight-vkey", vkey], dd)
    assert (
        "wait for the oversight body" in out and not (dd / "keys" / "oversight-root.key").exists()
    )
    with pytest.raises(NotApproved), TestClient(create_app(str(dd))):
        pass  # nothing approved is live: the server does not start
    root = ["--root-key", str(root_key), "--origin", "cleanroom.example/log"]
    (tmp_path / "p.json").write_text(
        ok(["oversight", "grant", "principal", "ola", "--role", "reviewer", *root], dd)
    )
    ok(["principal", "add", "ola", "--org", "oversight", "--role", "reviewer",
        "--jurisdiction", "US", "--statement", str(tmp_path / "p.json")], dd)  # fmt: skip
    ola_vkey = ok(["release", "reviewer", "keygen", "ola", "--out", str(tmp_path / "ola.key")],
                  dd).strip()  # fmt: skip
    (tmp_path / "r.json").write_text(
        ok(["oversight", "grant", "reviewer", "ola", "--vkey", ola_vkey, *root], dd)
    )
    ok(["release", "reviewer", "add", "ola", "--org", "oversight", "--vkey", ola_vkey,
        "--by", "operator-reviewer", "--statement", str(tmp_path / "r.json")], dd)  # fmt: skip
    for art in json.loads(ok(["release", "list", "--json"], dd)):
        assert not art["verdict"]["approved"]
        v = json.loads(ok(["release", "approve", art["digest"], "--key",
                           str(tmp_path / "ola.key")], dd))  # fmt: skip
        assert v["approved"], v
        ok(["release", "deploy", art["digest"], "--by", "operator-reviewer"], dd)
    with TestClient(create_app(str(dd))) as c:
        assert c.get("/healthz").json()["status"] == "ok"
    report = json.loads(ok(["release", "verify", "--json"], dd))
    assert report["problems"] == [] and report["reviewers"]["ola"] == "oversight"
