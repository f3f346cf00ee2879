"""The access log: one line per request naming the route as declared, the
status, the time and the request id — never a user id, a query, a token or
the client's address."""

from __future__ import annotations

import logging

import pytest

from tests.support import Api


def test_one_line_per_request_and_nobody_named(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cleanroom.access"):
        r = api.call("GET", "/v1/users/u1?purpose=support", "alice",
                     headers={"X-Request-Id": "req-42"})  # fmt: skip
        assert r.status_code == 200
        api.call("GET", "/v1/users/u2?purpose=support", "pete")  # refused
        api.client.get("/no/such/path")
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "cleanroom.access"]
    assert len(lines) == 3
    assert lines[0].startswith("GET /v1/users/{user_id} 200 ") and lines[0].endswith("rid=req-42")
    assert lines[1].startswith("GET /v1/users/{user_id} 403 ")
    assert lines[2].startswith("GET (no route) 404 ")
    text = "\n".join(lines)
    for secret in ("u1", "u2", "support", api.tokens["alice"], "testclient", "127.0.0.1"):
        assert secret not in text, secret
