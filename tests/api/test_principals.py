"""Principals' API tokens over HTTP: the operator's and the oversight body's
staff see who holds live tokens (never a secret, never a data subject); the
operator's staff revoke them, each revocation a ledger entry committed with
it; nobody else may; the oversight body's monitor raises an alert when the
operator cuts off one of the oversight body's principals."""

from __future__ import annotations

from pathlib import Path

from cleanroom.oversight import Watcher
from tests.support import running_api


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return r.json()


def test_staff_list_and_the_operator_revokes_on_the_record(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    with running_api(tmp_path, db_url, log_signer) as a:
        listed = a.call("GET", "/v1/principals", "alice")
        assert listed.status_code == 200, listed.text
        rows = {p["name"]: p for p in listed.json()["items"]}
        assert isinstance(listed.json()["decision"], int)
        pete = rows["pete"]
        assert pete["org"] == "parent" and pete["live_tokens"] == 1
        token_id = a.tokens["pete"].split("_")[1]
        assert [t["id"] for t in pete["tokens"]] == [token_id]
        assert "subject" not in rows["ulla"]  # no data subject named
        assert a.tokens["pete"] not in listed.text  # no secret
        assert a.call("GET", "/v1/principals", "olga").status_code == 200
        for outsider in ("pete", "pia", "app", "rita", "ulla"):
            _problem(a.call("GET", "/v1/principals", outsider), 403)

        # the foreign parent may not revoke anyone's tokens (and nothing changes)
        body = {"reason": "cut the operator off"}
        _problem(a.call("POST", "/v1/principals/alice/revocations", "pete", json=body), 403)
        assert a.call("GET", "/v1/principals", "alice").status_code == 200

        # bad requests: a clear problem each, nothing revoked
        for bad in ({}, {"reason": ""}, {"reason": "x", "token": "nothex"},
                    {"reason": "x", "extra": 1}):  # fmt: skip
            _problem(a.call("POST", "/v1/principals/pete/revocations", "alice", json=bad), 422)
        p = _problem(a.call("POST", "/v1/principals/nobody/revocations", "alice", json=body), 404)
        assert "nobody" in p["detail"]
        for odd in (
            "%00",
            "x" * 5000,
            "Pete",
            "pete%20",
            "pete%0A",
        ):  # (a NUL once gave PostgreSQL a 500)
            r = a.call("POST", f"/v1/principals/{odd}/revocations", "alice", json=body)
            assert len(_problem(r, 404)["detail"]) < 200
        other = {"reason": "x", "token": "0" * 16}
        p = _problem(a.call("POST", "/v1/principals/pete/revocations", "alice", json=other), 409)
        assert "0000000000000000" in p["detail"]
        assert a.call("GET", "/v1/ledger/checkpoint", "pete").status_code in (200, 404)
        assert a.call("GET", "/v1/boosts", "pete").status_code != 401  # still live

        # the operator revokes the parent engineer's leaked token
        why = {"reason": "token posted in a public channel"}
        r = a.call("POST", "/v1/principals/pete/revocations", "alice", json=why)
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["revoked"] == [token_id]
        assert a.call("GET", "/v1/boosts", "pete").status_code == 401
        entry = a.ledger()[out["ledger_index"]]
        assert entry["type"] == "principal.tokens_revoked"
        assert (entry["principal"], entry["org"], entry["by"]) == ("pete", "parent", "alice")
        assert entry["tokens"] == [token_id] and entry["reason"] == why["reason"]
        again = a.call("POST", "/v1/principals/pete/revocations", "alice", json=why)
        assert "no live token" in _problem(again, 409)["detail"]

        # one token of two: the other stays live
        second = a.room.principals.issue_token("rita")
        first_id = a.tokens["rita"].split("_")[1]
        one = {"reason": "rotated", "token": first_id}
        r = a.call("POST", "/v1/principals/rita/revocations", "alice", json=one)
        assert r.status_code == 201 and r.json()["revoked"] == [first_id]
        assert a.call("GET", "/v1/boosts", "rita").status_code == 401
        fresh = a.client.get("/v1/principals", headers={"Authorization": f"Bearer {second}"})
        assert fresh.status_code == 403  # authenticated (live), refused by the gate

        # cutting off the oversight body's principal goes on the record, and the
        # monitor's rule engine (which knows olga from the root's statement) flags it
        r = a.call("POST", "/v1/principals/olga/revocations", "sam", json={"reason": "audit"})
        assert r.status_code == 201, r.text
        a.room.log.integrate()
        w = Watcher("http://testserver/log/", log_signer.verifier, tmp_path / "monitor",
                    client=a.client)  # fmt: skip
        alerts = [x for x in w.run_once().new_alerts if x.kind == "oversight-access-revoked"]
        assert [x.index for x in alerts] == [r.json()["ledger_index"]]  # not pete's, not rita's
        assert "'sam'" in alerts[0].message and "'audit'" in alerts[0].message
        assert alerts[0].evidence["principal"] == "olga"
