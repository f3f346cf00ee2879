"""Findings 6 and 7: input that is not I-JSON, too large or out of range gets a
clear problem+json (422/413) on every route, before anything is stored; a
user's export never breaks on a stored NaN; the CLI answers one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Api

EVENT = '{"events": [{"id": "e-x", "user": "u1", "video": "v1", "kind": "view", "ts_ms": 5, '
BAD_BODIES = {
    "nan": EVENT + '"watch_ms": 10, "context": {"score": NaN}}]}',
    "infinity": EVENT + '"watch_ms": 10, "context": {"score": -Infinity}}]}',
    "huge-float": EVENT + '"watch_ms": 10, "context": {"score": 1e999}}]}',
    "big-int": EVENT + '"watch_ms": 9007199254740993}]}',
    "duplicate-key": EVENT + '"watch_ms": 10, "watch_ms": 11}]}',
    "deep": EVENT + '"watch_ms": 10, "context": ' + "[" * 5000 + "]" * 5000 + "}]}",
    "lone-surrogate": EVENT + '"watch_ms": 10, "context": {"s": "\\ud800"}}]}',
    "not-utf8": (EVENT + '"watch_ms": 10, "context": {"s": "').encode() + b'\xff"}}]}',
}
ROUTES = [
    ("POST", "/v1/events", "app"),
    ("PUT", "/v1/users/u9", "app"),
    ("POST", "/v1/videos", "app"),
    ("POST", "/v1/releases", "alice"),
    ("POST", "/v1/screen", "alice"),
    ("POST", "/v1/boosts", "alice"),
    ("POST", "/v1/ledger/entries", "alice"),
    ("POST", "/v1/oversight/deletion-orders", "olga"),
]


@pytest.fixture
def api(shared_api: Api) -> Api:
    """Every attack here must change nothing: one clean room for the module."""
    return shared_api


def _state(api: Api) -> tuple:
    return api.room.log.store.sequenced_size(), api.room.vault.counts()


@pytest.mark.parametrize("kind", list(BAD_BODIES))
@pytest.mark.parametrize(("method", "path", "who"), ROUTES, ids=[r[1] for r in ROUTES])
def test_non_ijson_is_refused_on_every_route(
    api: Api, kind: str, method: str, path: str, who: str
) -> None:
    before = _state(api)
    body = BAD_BODIES[kind]
    r = api.call(method, path, who, content=body if isinstance(body, bytes) else body.encode(),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, (kind, path, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert "I-JSON" in r.json()["detail"]
    assert _state(api) == before


def test_a_users_export_survives_what_was_refused(api: Api) -> None:
    api.call("POST", "/v1/events", "app", content=BAD_BODIES["nan"].encode(),
             headers={"Content-Type": "application/json"})  # fmt: skip
    r = api.call("GET", "/v1/me/data", "ulla")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "size"), [("/v1/releases", 10 * 1024 * 1024), ("/v1/screen", 2 * 1024 * 1024)]
)
def test_bodies_are_capped_on_every_route(api: Api, path: str, size: int) -> None:
    before = _state(api)
    files = {"policy.cedar": "// " + "x" * size}
    r = api.call("POST", path, "alice", json={"kind": "policy", "name": "big",
                                              "manifest": {"files": files}})  # fmt: skip
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert _state(api) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ledger/entries/99999999999999999999",
        "/v1/ledger/proofs/inclusion?index=99999999999999999999",
        "/v1/ledger/proofs/consistency?old=1&new=99999999999999999999",
    ],
)
def test_out_of_range_numbers_are_a_problem_not_a_500(api: Api, path: str) -> None:
    r = api.call("GET", path, "alice")
    assert r.status_code in (400, 404, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_cli_token_lifetime_out_of_range_is_one_line(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    cli = [sys.executable, "-m", "cleanroom.cli", "--data-dir", str(dd)]
    assert subprocess.run([*cli, "init"], capture_output=True).returncode == 0
    for days in ("1e9", "0", "-3", "nan"):
        r = subprocess.run([*cli, "principal", "token", "recommender", "--days", days],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 2, (days, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_the_data_directory_is_the_owners_alone(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    cli = [sys.executable, "-m", "cleanroom.cli", "--data-dir", str(dd)]
    assert subprocess.run([*cli, "init"], capture_output=True).returncode == 0
    assert dd.stat().st_mode & 0o777 == 0o700
    for f in ("config.json", "cleanroom.db"):
        assert (dd / f).stat().st_mode & 0o777 == 0o600, f


def test_text_bodies_are_left_to_their_route(api: Api) -> None:
    """A C2SP add-checkpoint request is text: the guard does not read it as JSON."""
    r = api.client.post("/witness/add-checkpoint", content=b"old 0\n\nnot a checkpoint\n")
    assert r.status_code != 422 or "I-JSON" not in r.text
    r = api.client.post("/v1/ledger/entries", content=b' {"type": NaN}',
                        headers={"Authorization": f"Bearer {api.tokens['alice']}"})  # fmt: skip
    assert r.status_code == 422 and "I-JSON" in r.json()["detail"]  # no type, still JSON


def test_a_json_body_cannot_dodge_the_check_with_another_content_type(api: Api) -> None:
    before = _state(api)
    for ctype in ("text/plain", "application/octet-stream", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = api.call("POST", "/v1/events", "app", content=BAD_BODIES["nan"].encode(),
                     headers=headers)  # fmt: skip
        assert r.status_code == 422 and "I-JSON" in r.json()["detail"], (ctype, r.text)
    assert _state(api) == before
