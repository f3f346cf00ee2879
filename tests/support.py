"""What the tests share besides fixtures: the principals and the seeded data
of a clean room under test, the API through a TestClient with a token per
principal, feeds served and retrained, and the CLI run as a child process."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from cleanroom.api.app import create_app
from cleanroom.gate import Principal
from cleanroom.ledger.entries import decode_entry
from cleanroom.room import CleanRoom
from cleanroom.room.bootstrap import add_oversight_principal
from cleanroom.room.config import Config, DataDir

ORIGIN = "test.example/log"


PRINCIPALS = [
    Principal("app", "service", "platform", "ingest", "US", 1),
    Principal("alice", "person", "operator", "support", "US", 1),
    Principal("sam", "person", "operator", "safety", "US", 1),
    Principal("pete", "person", "parent", "engineer", "US", 9),
    Principal("pia", "service", "parent", "recommender", "US", 9),
    Principal("olga", "person", "oversight", "regulator", "US", 5),
    Principal("rita", "person", "researcher", "scientist", "US", 1),
    Principal("ulla", "user", "users", "user", "US", 0, subject="u1"),
    Principal("eve-eu", "person", "operator", "support", "DE", 1),
]


USER = {
    "jurisdiction": "US",
    "profile": {
        "handle": "@one",
        "email": "one@example.com",
        "phone": "+1 555 0100 1234",
        "ip_address": "203.0.113.7",
        "birth_year": 1990,
        "precise_location": {"lat": 40.7, "lon": -74.0},
    },
    "public": {"display_name": "One"},
}


def add_principal(room: CleanRoom, p: Principal) -> Principal:
    """Register ``p``; one of the oversight body with the statement of the root
    key in the data directory (the test plays the oversight body)."""
    if p.org == "oversight":
        assert room.data_dir is not None
        return add_oversight_principal(room, room.data_dir, p)
    return room.principals.add(p)


def make_dir(tmp_path: Path, db_url: str, log_signer, **config) -> DataDir:
    dd = DataDir(tmp_path / "dd")
    dd.save(Config(origin=ORIGIN, database_url=db_url, **config))
    dd.write_key("log", log_signer)
    return dd


class Api:
    """A TestClient plus a token per principal."""

    def __init__(self, client: TestClient, room: CleanRoom) -> None:
        self.client = client
        self.room = room
        self.tokens: dict[str, str] = {}
        self.app = None
        for p in PRINCIPALS:
            add_principal(room, p)
            self.tokens[p.name] = room.principals.issue_token(p.name)

    def through(self, client: TestClient) -> Api:
        """The same principals and tokens, through another server of the clean room."""
        other = copy.copy(self)
        other.client, other.room, other.app = client, client.app.state.room, client.app
        return other

    def h(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def call(self, method: str, path: str, who: str | None = None, **kw):
        headers = {**(self.h(who) if who else {}), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def ledger(self) -> list[dict]:
        store = self.room.log.store
        return [decode_entry(body) for _, body in store.entries()]


@contextmanager
def running_api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    """The app of a fresh data dir, served through a TestClient, with a token
    per principal."""
    dd = make_dir(tmp_path, db_url, log_signer)
    app = create_app(str(dd.path))
    with TestClient(app) as client:
        a = Api(client, app.state.room)
        a.app = app
        yield a


def seed(a: Api) -> None:
    assert a.call("PUT", "/v1/users/u1", "app", json=USER).status_code == 201
    other = {**USER, "profile": {"handle": "@two", "phone": "+1 555 0100 9999"}}
    assert a.call("PUT", "/v1/users/u2", "app", json=other).status_code == 201
    r = a.call(
        "POST",
        "/v1/videos",
        "app",
        json={"videos": [{"id": f"v{i}", "creator": f"c{i % 2}"} for i in range(3)]},
    )
    assert r.status_code == 200, r.text
    events = [
        {
            "id": f"e{i}",
            "user": f"u{1 + i % 2}",
            "video": f"v{i % 3}",
            "kind": "view",
            "ts_ms": 1000 + i,
            "watch_ms": 5000,
            "context": {"app": "ios"},
        }
        for i in range(10)
    ]
    r = a.call("POST", "/v1/events", "app", json={"events": events})
    assert r.status_code == 200 and r.json()["stored"] == 10, r.text


def access_entries(a: Api) -> list[dict]:
    return [e for e in a.ledger() if e.get("type") == "access"]


# --------------------------------------------------------------------------- routes


NOW = int(time.time() * 1000)


def feed_events(users: int, videos: int, per_user: int, offset: int = 0) -> list[dict]:
    out = []
    for u in range(users):
        for k in range(per_user):
            v = (u * 7 + k * 3) % videos
            liked = (u + k) % 3 == 0
            out.append(
                {
                    "id": f"e{offset}-{u}-{k}",
                    "user": f"u{u}",
                    "video": f"v{v}",
                    "kind": "view" if liked else "skip",
                    "ts_ms": NOW - 3_600_000 + k * 1000,
                    "watch_ms": 30_000 if liked else 800,
                }
            )
    return out


def retrain(a: Api) -> None:
    rec = a.app.state.recommender
    rec.retrain().join(60)
    assert rec.trained and rec.trained["records"] == 600


def serve_feeds(a: Api, seeds: range) -> list[dict]:
    out = []
    for s in seeds:
        r = a.call("GET", f"/v1/feed?limit=10&seed=s{s}", "ulla")
        assert r.status_code == 200, r.text
        out.append(r.json())
    a.room.log.integrate()
    return out


OPS = Principal("ops", "person", "operator", "engineer", "US", 1)


def export(a: Api, who: str, body: dict):
    return a.call("POST", "/v1/exports", who, json=body)


def run_cli(
    args: list[str], data_dir: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``cleanroom --data-dir DATA_DIR ARGS`` through the console script's own
    ``main()`` in this process (argument parsing, one-line errors, exit
    codes), with its own stdin, stdout, stderr and environment: what a child
    process would print and return, without an interpreter start per call.
    An error main() does not turn into an exit code is exit code 1 with the
    traceback on stderr, as in a child process."""
    from typer.testing import CliRunner

    from cleanroom.cli import main

    argv = ["cleanroom", "--data-dir", str(data_dir), *args]
    saved_env, saved_argv, code = dict(os.environ), sys.argv, 0
    with CliRunner().isolation(input=stdin, env=env) as (out, err, _):
        sys.argv = argv
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception:
            sys.stderr.write(traceback.format_exc())
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(argv, code, stdout, stderr)


def run_process(
    args: list[str], data_dir: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The same command as a child process (``python -m cleanroom.cli``): for
    what only a process shows (the interpreter's start, signals, the console
    script itself)."""
    return subprocess.run(
        [sys.executable, "-m", "cleanroom.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def drop_cluster_traces(db_url: str, redis_url: str | None, nats_url: str | None) -> None:
    """Remove what a clean room on ``db_url`` left in Redis and NATS (its keys, its stream)."""
    from cleanroom.room.sync import drop_shared
    from cleanroom.storage import Database

    db = Database(db_url)
    url = db.url
    db.dispose()
    drop_shared(url, redis_url, nats_url)


def free_port_url() -> str:
    """The URL of a local port nothing listens on."""
    from cleanroom.ledger.serving import free_port

    return f"http://127.0.0.1:{free_port('127.0.0.1')}/witness"
