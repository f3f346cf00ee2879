"""Finding 10: what a careless operator or a noisy client runs into. Denied
requests cannot grow the ledger at request rate; a principal changed in
another process stops working within a second; a CSV with an open quote is
an error, not merged rows; names are written so a spreadsheet cannot run
them; the alert webhook is retried and signed; a dead witness is asked again
with backoff, not twice a second; `oversight alerts` on a wrong state
directory or kind is an error."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from sqlalchemy import update

from cleanroom.gate import Principal, Principals
from cleanroom.gate.gate import DenialLimiter, RateLimited
from cleanroom.gate.principals import Unauthenticated, principals_t
from cleanroom.ledger.log import Log
from cleanroom.ledger.note import ALG_COSIGNATURE_V1, generate_signer
from cleanroom.ledger.serving import serve_in_thread
from cleanroom.ledger.witness import WitnessEndpoint
from cleanroom.oversight import alerts as alerts_mod
from cleanroom.oversight.alerts import Alert, AlertStore
from cleanroom.storage import Database
from tests.support import ORIGIN, Api, run_cli, running_api


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        yield a


def test_denied_requests_are_rate_limited_and_counted(api: Api) -> None:
    gate = api.room.gate
    now = [0.0]  # the limiter's clock, moved by the test alone
    gate.denials = DenialLimiter(burst=5, rate=20.0, clock=lambda: now[0])
    pete = api.room.principals.get("pete")
    before = len(api.ledger())
    for _ in range(5):
        assert not gate.decide(pete, "read", "Profile", purpose="support").allowed
    with pytest.raises(RateLimited):
        gate.decide(pete, "read", "Profile", purpose="support")
    r = api.call("GET", "/v1/users/u1?purpose=support", "pete")
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert len(api.ledger()) == before + 5  # the limited ones wrote nothing
    # others are not affected
    assert api.call("GET", "/v1/users/u1?purpose=support", "rita").status_code == 403
    now[0] += 0.2  # the bucket refills; the next denial first counts what was refused
    assert not gate.decide(pete, "read", "Profile", purpose="support").allowed
    limited = [e for e in api.ledger() if e["type"] == "access.limited"]
    assert [(e["principal"], e["refused_unrecorded"]) for e in limited] == [("pete", 2)]
    assert gate.limited == 2


def test_a_principal_disabled_elsewhere_stops_within_a_second(tmp_path: Path) -> None:
    """Another process remembers a verified token; the principal is disabled
    here. The next look at the revocations (every ``revocation_check``
    seconds, 0.5 by default) forgets it. Tested with a look every 0.05 s and a
    wait of at least that: a slower machine only waits longer."""
    assert Principals.__init__.__kwdefaults__["revocation_check"] <= 1.0
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    here = Principals(db)
    elsewhere = Principals(db, revocation_check=0.05)  # another server process
    here.add(Principal("sam", "person", "operator", "safety", "US", 1))
    token = here.issue_token("sam")
    assert elsewhere.authenticate(token).name == "sam"  # remembered there
    assert elsewhere.authenticate(token).name == "sam"
    with db.write() as conn:
        conn.execute(update(principals_t).where(principals_t.c.name == "sam")
                     .values(disabled=True))  # fmt: skip
    time.sleep(0.1)  # the next look at the revocations is due
    with pytest.raises(Unauthenticated, match="disabled"):
        elsewhere.authenticate(token)
    db.dispose()


def test_a_csv_with_an_open_quote_is_an_error(tmp_path: Path) -> None:
    dd = tmp_path / "dd"
    assert run_cli(["init"], dd).returncode == 0
    bad = tmp_path / "names.csv"
    bad.write_text('name\n"Acme, Inc\nBeta Corp\nGamma Ltd\n')
    r = run_cli(["screen", "batch", str(bad)], dd)
    assert r.returncode == 2 and "not valid CSV" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    formula = tmp_path / "formula.csv"
    formula.write_text('name\n"=HYPERLINK(""http://x"",""y"")"\n+cmd\n')
    r = run_cli(["screen", "batch", str(formula)], dd)
    assert r.returncode == 0, r.stderr
    cells = [line.split("\t")[3] for line in r.stdout.splitlines()]
    assert cells == ['\'=HYPERLINK("http://x","y")', "'+cmd"]


def test_oversight_alerts_on_a_wrong_state_dir_or_kind_is_an_error(tmp_path: Path) -> None:
    r = run_cli(["oversight", "alerts", "--state-dir", str(tmp_path / "nowhere")], tmp_path / "dd")
    assert r.returncode == 2 and "no monitor has run" in r.stderr
    state = tmp_path / "state"
    state.mkdir()
    (state / "watch.json").write_text("{}")
    r = run_cli(["oversight", "alerts", "--state-dir", str(state), "--kind", "nonsense"], tmp_path)
    assert r.returncode == 2 and "--kind is one of" in r.stderr


def test_the_alert_webhook_is_retried_and_signed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(alerts_mod, "WEBHOOK_FIRST_WAIT_S", 0.01)
    got: list[tuple[bytes, str]] = []
    hook = FastAPI()

    @hook.post("/hook")
    async def receive(request: Request):
        got.append((await request.body(), request.headers.get("x-cleanroom-signature", "")))
        from fastapi.responses import Response

        return Response(status_code=503 if len(got) < 3 else 204)

    served = serve_in_thread(hook, name="hook")
    try:
        store = AlertStore(tmp_path / "mon", webhook=served.url + "/hook")
        store.add([Alert("tamper", 7, "entry 7 changed")])
    finally:
        served.stop(10)
    assert len(got) == 3 and store.webhook_errors == []
    body, signature = got[-1]
    key = (tmp_path / "mon" / "webhook.key").read_text().strip().encode()
    assert signature == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert json.loads(body)["id"] == "tamper:7"
    assert (tmp_path / "mon" / "webhook.key").stat().st_mode & 0o777 == 0o600


def test_a_dead_witness_is_asked_again_with_backoff(tmp_path: Path, log_signer, caplog) -> None:
    from tests.support import free_port_url

    dead = WitnessEndpoint.parse(
        generate_signer("dead.example/w", ALG_COSIGNATURE_V1).verifier.vkey, free_port_url()
    )
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    caplog.set_level(logging.WARNING, logger="cleanroom.ledger.log")
    with Log(db, ORIGIN, log_signer, interval=0.05, witnesses=[dead]).start() as log:
        for i in range(20):
            log.append({"type": "test.entry", "v": 1, "i": i})
            time.sleep(0.1)
    warnings = [r for r in caplog.records if "dead.example/w" in r.getMessage()]
    assert 1 <= len(warnings) <= 4, [r.getMessage() for r in warnings]  # not ~40
    db.dispose()
