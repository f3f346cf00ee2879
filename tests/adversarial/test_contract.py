"""The integrator's contract: a 403 names its rules and ledger index as fields,
every response has a request id, re-sending a batch after a timeout succeeds
without duplicates, every route documents its problem responses, and the CLI
has --version and takes its token from the environment or a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import Api, run_cli, run_process


def test_a_403_names_its_rules_and_ledger_index(shared_api: Api) -> None:
    r = shared_api.call("GET", "/v1/users/u1?purpose=support", "pete")
    assert r.status_code == 403
    body = r.json()
    assert "parent-never-protected" in body["rules"]
    entry = shared_api.ledger()[body["ledger_index"]]
    assert entry["type"] == "access" and entry["decision"] == "deny"


def test_every_response_has_a_request_id(shared_api: Api) -> None:
    mine = shared_api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    new = shared_api.client.get("/v1/nope")
    assert len(new.headers["x-request-id"]) == 32
    bad = shared_api.client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert bad.headers["x-request-id"] != "<script>"
    refused = shared_api.call("POST", "/v1/events", "app", content=b"{NaN")
    assert refused.status_code == 422 and refused.headers["x-request-id"]


def test_resending_a_batch_after_a_timeout_stores_nothing_twice(shared_api: Api) -> None:
    api = shared_api
    batch = {"events": [{"id": f"retry-{i}", "user": "u2", "video": "v1", "kind": "like",
                         "ts_ms": 50_000 + i, "watch_ms": 0} for i in range(3)]}  # fmt: skip
    first = api.call("POST", "/v1/events", "app", json=batch)
    assert first.status_code == 200 and first.json()["stored"] == 3
    counts = api.room.vault.counts()
    again = api.call("POST", "/v1/events", "app", json=batch)
    assert again.status_code == 200, again.text
    assert again.json()["stored"] == 0 and again.json()["already_stored"] == 3
    assert api.room.vault.counts() == counts
    # the same ids with other content are a conflict, nothing stored
    changed = {"events": [{**batch["events"][0], "kind": "share"}]}
    assert api.call("POST", "/v1/events", "app", json=changed).status_code == 409
    assert api.room.vault.counts() == counts


def test_every_route_documents_its_problems(shared_api: Api) -> None:
    doc = shared_api.client.get("/openapi.json").json()
    assert "Problem" in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"401", "403", "422"} <= set(op["responses"]), (method, path)


def test_cli_version_and_token_from_env_or_file(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cleanroom.cli", "--version"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("cleanroom ")
    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    # no token at all: one line naming the three ways
    r = run_cli(["feed", "--url", "http://127.0.0.1:9"], dd)
    assert r.returncode == 2 and "CLEANROOM_TOKEN or --token-file" in r.stderr
    loose = tmp_path / "token"
    loose.write_text("crt_x\n")
    os.chmod(loose, 0o644)
    r = run_cli(["feed", "--url", "http://127.0.0.1:9", "--token-file", str(loose)], dd)
    assert r.returncode == 2 and "chmod 600" in r.stderr


def test_cli_tables_are_not_cut_and_data_comes_as_json(tmp_path: Path) -> None:
    import json

    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    long_role = "support-for-the-whole-of-the-north-american-region"
    name = "a-rather-long-principal-name-for-a-wide-table"
    add = ["principal", "add", name, "--org", "operator", "--role", long_role]
    assert run_cli([*add, "--jurisdiction", "US"], dd).returncode == 0
    listed = run_cli(["principal", "list"], dd).stdout  # piped: not a terminal
    assert long_role in listed and name in listed
    made = run_cli(["init", "--json"], tmp_path / "other")
    assert made.returncode == 0 and json.loads(made.stdout)["live"] == ["policy", "model"]
    for args in (["deletion", "list"], ["policy", "show"], ["principal", "list"]):
        r = run_cli([*args, "--json"], dd)
        assert r.returncode == 0, (args, r.stderr)
        json.loads(r.stdout)


def test_every_list_pages_with_a_cursor_in_one_shape(shared_api: Api) -> None:
    from cleanroom.api.pages import encode

    api = shared_api
    lists = [
        ("/v1/boosts", "olga"),
        ("/v1/oversight/deletion-orders", "olga"),
        ("/v1/releases", "alice"),
        ("/v1/releases/models", "olga"),
        ("/v1/screen/lists?all_versions=true", "alice"),
        ("/v1/oversight/exposure", "olga"),
    ]
    for path, who in lists:
        doc = api.call("GET", path, who).json()
        assert set(doc) >= {"items", "next_cursor"}, (path, doc)
    # walk the releases one at a time: every item once, in order, then null
    whole = api.call("GET", "/v1/releases", "alice").json()["items"]
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        doc = api.call("GET", "/v1/releases", "alice", params=params).json()
        seen += [a["digest"] for a in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["digest"] for a in whole] and len(seen) >= 2
    bad = api.call("GET", "/v1/releases", "alice", params={"cursor": "%%%"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    gone = encode({"o": 1, "k": "sha256:" + "0" * 64})
    r = api.call("GET", "/v1/releases", "alice", params={"cursor": gone})
    assert r.status_code == 409


def test_every_route_documents_what_it_answers(shared_api: Api) -> None:
    doc = shared_api.client.get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = [op["responses"][c] for c in ("200", "201", "202") if c in op["responses"]]
            assert ok, (method, path)
            schemas = [m.get("schema") for m in ok[0].get("content", {}).values()]
            assert any(schemas), (method, path, ok[0])


def test_one_exit_code_scheme(tmp_path: Path) -> None:
    """0 done, 1 found a problem, 2 bad input — the same for every command, as
    the exit status of a real process."""
    dd = tmp_path / "dd"
    assert run_process(["init"], dd).returncode == 0
    index = run_process(
        ["ledger", "append"], dd, '{"type":"ops.note","v":1,"n":1}\n'
    ).stdout.split()[-1]
    (tmp_path / "p").write_text(run_process(["ledger", "proof", index], dd).stdout)
    (tmp_path / "e").write_text('{"n":2,"type":"ops.note","v":1}\n')  # not the entry proven
    r = run_process(["ledger", "verify", "--proof", str(tmp_path / "p"), "--entry",
             str(tmp_path / "e")], dd)  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("problem:"), r.stderr
    assert run_process(["release", "verify"], dd).returncode == 0
    from cleanroom.room import CleanRoom

    with CleanRoom.open(dd, background=False) as room:  # a deployment written around it all
        room.log.append({"type": "release.deployed", "v": 1, "artifact": "sha256:" + "ab" * 32,
                         "kind": "model", "by": "x", "rollback": False, "at_ms": 1})  # fmt: skip
        room.log.integrate()
    assert run_process(["release", "verify"], dd).returncode == 1
    assert run_process(["release", "verify", "--kind"], dd).returncode == 2
