"""The ``cleanroom`` command's contract: init, ledger verbs, one-line errors with exit 2."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cleanroom.foryou.evaluate import GRIDS
from cleanroom.ledger.note import parse_verifier
from tests.support import run_cli


def test_init_append_get_proof_verify(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    r = run_cli(["init", "--origin", "cli.example/log"], dd)
    assert r.returncode == 0, r.stderr
    vkey = r.stdout.strip().splitlines()[-1]
    assert parse_verifier(vkey).name == "cli.example/log"
    assert (dd / "keys" / "log.key").stat().st_mode & 0o777 == 0o600
    assert "first releases" in r.stdout  # reviewers, shipped policies and model, on record
    entries = '{"type":"cli.test","v":1,"n":1}\n\n{ "v": 1, "type": "cli.test", "n": 2 }\n'
    r = run_cli(["ledger", "append"], dd, entries)
    assert r.returncode == 0, r.stderr
    first, second = (int(x) for x in r.stdout.split())
    # after what init recorded (the oversight root, reviewers, first releases, lists)
    assert first >= 13 and second == first + 1
    r = run_cli(["ledger", "get", str(second)], dd)
    assert r.stdout.strip() == '{"n":2,"type":"cli.test","v":1}'
    proof = run_cli(["ledger", "proof", str(second)], dd).stdout
    assert proof.startswith(f"c2sp.org/tlog-proof@v1\nindex {second}\n")
    (tmp_path / "p").write_text(proof)
    (tmp_path / "e").write_text('{"n":2,"type":"cli.test","v":1}\n')
    r = run_cli(
        [
            "ledger",
            "verify",
            "--vkey",
            vkey,
            "--proof",
            str(tmp_path / "p"),
            "--entry",
            str(tmp_path / "e"),
        ],
        dd,
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr
    cp = run_cli(["ledger", "checkpoint"], dd).stdout
    assert cp.startswith(f"cli.example/log\n{second + 1}\n")
    # init again is idempotent and prints the same key
    assert run_cli(["init"], dd).stdout.strip().splitlines()[-1] == vkey


def test_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    cases = [
        (["ledger", "get", "0"], ""),  # not initialised
        (["init", "--origin", "bad origin"], ""),
    ]
    for args, stdin in cases:
        r = run_cli(args, dd, stdin)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:")
    assert run_cli(["init"], dd).returncode == 0
    before = run_cli(["ledger", "checkpoint"], dd).stdout
    for args, stdin in [
        (["ledger", "append"], '{"type":"ok.one","v":1}\n{"type":"x"}\n'),
        (["ledger", "append"], "not json\n"),
        (["ledger", "append"], ""),
        (["ledger", "get", "500"], ""),
        (["ledger", "get", "minus"], ""),
        (["ledger", "proof", "300"], ""),
        (["ledger", "verify", "--vkey", "nonsense"], ""),
        (["ledger", "nosuchverb"], ""),
    ]:
        r = run_cli(args, dd, stdin)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # nothing was appended by the failed commands (the batch is all or nothing)
    assert run_cli(["ledger", "checkpoint"], dd).stdout == before


def test_principal_add_token_revoke_list(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from cleanroom.api.app import create_app

    dd = tmp_path / "dd"
    assert run_cli(["init", "--jurisdiction", "US"], dd).returncode == 0
    r = run_cli(
        [
            "principal",
            "add",
            "alice",
            "--org",
            "operator",
            "--role",
            "support",
            "--jurisdiction",
            "US",
        ],
        dd,
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(["principal", "token", "alice"], dd)
    assert r.returncode == 0
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("crt_")
    listed = json.loads(run_cli(["principal", "list", "--json"], dd).stdout)
    alice = next(p for p in listed if p["name"] == "alice")
    assert alice["live_tokens"] == 1 and alice["org"] == "operator"
    assert {"recommender", "deletion-service"} <= {p["name"] for p in listed}
    with TestClient(create_app(str(dd))) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/users/nobody?purpose=support", headers=auth).status_code == 404
        assert run_cli(["principal", "revoke", "alice"], dd).stdout.startswith("revoked 1")
        time.sleep(0.6)  # another process's revocation takes effect within 0.5 s
        assert c.get("/v1/users/nobody?purpose=support", headers=auth).status_code == 401
    for bad in (
        ["principal", "add", "bob", "--org", "martians", "--role", "x", "--jurisdiction", "US"],
        ["principal", "add", "alice", "--org", "operator", "--role", "x", "--jurisdiction", "US"],
        ["principal", "add", "carl", "--org", "operator", "--role", "x", "--jurisdiction", "usa"],
        ["principal", "token", "nobody"],
        ["principal", "revoke", "alice", "--token", "0000000000000000"],
        ["policy", "validate", str(tmp_path / "missing")],
    ):
        r = run_cli(bad, dd)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr


def test_policy_commands(tmp_path: Path) -> None:
    r = run_cli(["policy", "show"], tmp_path)
    assert r.returncode == 0 and "parent-never-protected" in r.stdout
    from cleanroom.gate.policy import shipped

    d = tmp_path / "policies"
    d.mkdir()
    for name, text in shipped().files.items():
        (d / name).write_text(text)
    r = run_cli(["policy", "validate", str(d)], tmp_path)
    assert r.returncode == 0 and shipped().version in r.stdout
    (d / "broken.cedar").write_text("permit (principal, action, resource) when { nope };")
    assert run_cli(["policy", "validate", str(d)], tmp_path).returncode == 2


def _split_files(tmp_path: Path) -> dict[str, Path]:
    """Slices of kuairec-small in the `user item label` format (150 users, the
    first 800 videos: small enough to train four models in seconds)."""
    from importlib import resources

    root = resources.files("cleanroom") / "data" / "kuairec-small"
    out = {}
    for split in ("train", "valid", "test"):
        lines = [
            ln
            for ln in (root / f"{split}.txt").read_text().splitlines()
            if int(ln.split()[0]) < 150 and int(ln.split()[1]) < 800
        ]
        out[split] = tmp_path / f"{split}.txt"
        out[split].write_text("\n".join(lines) + "\n")
    return out


def test_eval_on_any_dataset_prints_json(tmp_path: Path) -> None:
    f = _split_files(tmp_path)
    r = run_cli(
        [
            "eval",
            "--train",
            str(f["train"]),
            "--valid",
            str(f["valid"]),
            "--test",
            str(f["test"]),
            "--json",
        ],
        tmp_path / "dd",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["models"]) == {"foryou", "popularity", "ease", "als", "als_weak", "itemknn"}
    for m in doc["models"].values():
        assert 0.0 <= m["ndcg@20"] <= 1.0 and 0.0 <= m["recall@20"] <= 1.0
    for name, grid in GRIDS.items():  # each baseline tuned on valid: a point of its grid
        assert doc["models"][name]["params"] in grid
    assert doc["users"] > 50 and doc["split"] == "test"
    # bad input: one line on stderr, exit 2, nothing on stdout
    f["test"].write_text("1 2 not-a-number\n")
    r = run_cli(
        ["eval", "--train", str(f["train"]), "--test", str(f["test"]), "--json"], tmp_path / "dd"
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "not a number" in r.stderr
    r = run_cli(
        ["eval", "--train", str(tmp_path / "missing.txt"), "--test", str(f["test"])], tmp_path
    )
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_feed_from_the_cli(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    r = run_cli(["feed", "--user", "u1", "--limit", "5", "--json"], dd)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["mode"] == "personalized" and doc["ledger_index"] >= 0
    r = run_cli(["feed", "--limit", "5"], dd)
    assert r.returncode == 2 and "--user" in r.stderr
    r = run_cli(["feed", "--user", "u1", "--limit", "0"], dd)
    assert r.returncode == 2 and "limit" in r.stderr
