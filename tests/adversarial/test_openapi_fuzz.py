"""Finding 7: the whole OpenAPI surface fuzzed with schemathesis (property
based: valid and invalid bodies, parameters and paths generated from the
schema) against a running server, as every kind of principal: no 500, every
error is problem+json, and a refused request stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cleanroom.api import create_app
from cleanroom.ledger.serving import serve_in_thread
from cleanroom.room import CleanRoom
from tests.support import Api, make_dir, seed

# as each kind of caller: platform service, operator staff, foreign parent,
# oversight body, researcher, user, and nobody
CALLERS = ("app", "alice", "pete", "olga", "rita", "ulla", None)
# routes that start long work whatever the input (they are tested elsewhere)
SLOW = ("/v1/recommender/retrain", "/v1/releases/{digest}/evaluate")


@dataclass
class Fuzzed:
    url: str
    tokens: dict[str, str]
    room: CleanRoom


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, log_signer) -> Iterator[Fuzzed]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    dd = make_dir(tmp, f"sqlite:///{tmp / 'cleanroom.db'}", log_signer)
    app = create_app(str(dd.path))
    served = serve_in_thread(app, name="fuzzed", wait_s=120)  # its start-up runs first
    room = app.state.room
    api = Api(_Http(served.url), room)  # type: ignore[arg-type]
    api.app = app
    seed(api)
    yield Fuzzed(served.url, api.tokens, room)
    served.stop(60)


class _Http:
    """The few calls ``seed`` makes, over real HTTP."""

    def __init__(self, url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, timeout=60)

    def request(self, method: str, path: str, **kw):
        return self.http.request(method, path, **kw)


def _stored(room: CleanRoom) -> tuple:
    """What a refused request must not change (decisions themselves are on the
    ledger, allowed or denied, by design)."""
    return (
        room.vault.counts(),
        len(room.principals.list()),
        len(room.releases.artifacts()),
        len(room.boosts.list()),
    )


def _operations(url: str) -> list:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [r.ok() for r in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_500_and_a_refusal_stores_nothing(fuzzed: Fuzzed, mode) -> None:
    """Every operation of the OpenAPI document, with valid (schema-conforming)
    and invalid inputs generated from it, as every kind of caller."""
    ops = [op for op in _operations(fuzzed.url) if op.path not in SLOW]
    assert len(ops) > 40
    failures: list[str] = []
    for op in ops:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=3, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case) -> None:
            failures.extend(_call_as_everyone(case, fuzzed))

        try:
            check()
        except Unsatisfiable:  # no invalid input exists (no parameters, no body)
            assert mode == GenerationMode.NEGATIVE, op.label
    assert failures == [], "\n".join(failures[:20])


def _call_as_everyone(case, fuzzed: Fuzzed) -> list[str]:
    out = []
    for who in CALLERS:
        headers = {"Authorization": f"Bearer {fuzzed.tokens[who]}"} if who else {}
        before = _stored(fuzzed.room)
        response = case.call(base_url=fuzzed.url, headers=headers, timeout=60)
        what = f"{case.method} {case.formatted_path} as {who}: {response.status_code}"
        ctype = response.headers.get("content-type") or [""]
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        problem = ctype.startswith("application/problem+json")
        if response.status_code >= 500 and not (response.status_code == 503 and problem):
            out.append(what + " " + response.text[:200])  # 503: not ready yet, said so
        elif response.status_code >= 400:
            if not problem:
                out.append(f"{what} answered {ctype!r}")
            elif _stored(fuzzed.room) != before:
                out.append(f"{what} refused but stored something")
    return out
