"""Finding 4: the differencing attack on aggregates. A researcher asks for the
event counts, one user acts, the researcher asks again: with exact counts the
difference is that user's event. Researchers' (and exporters') aggregates are
differentially private releases (OpenDP) charged to a per-principal budget on
the ledger; the oversight body still reads exact counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.gate.privacy import BUDGET, CONTRIBUTION, clamp, measurement
from tests.support import Api, running_api, seed

URL = "/v1/aggregates/events?purpose=research&by=kind&min_group=10"


@pytest.fixture
def api(tmp_path: Path, db_url: str, log_signer) -> Iterator[Api]:
    with running_api(tmp_path, db_url, log_signer) as a:
        seed(a)
        events = [{"id": f"d{i}", "user": f"u{1 + i % 2}", "video": "v1", "kind": "view",
                   "ts_ms": 10_000 + i, "watch_ms": 1000} for i in range(40)]  # fmt: skip
        # eight more viewers: 10 users' clamped views lie far above the group size,
        # so a noisy answer is released, not withheld (the attack needs answers)
        for u in range(3, 11):
            body = {"jurisdiction": "US", "profile": {"handle": f"@u{u}"}}
            assert a.call("PUT", f"/v1/users/u{u}", "app", json=body).status_code == 201
            events += [{"id": f"w{u}-{k}", "user": f"u{u}", "video": "v2", "kind": "view",
                        "ts_ms": 20_000 + k, "watch_ms": 1000} for k in range(5)]  # fmt: skip
        assert a.call("POST", "/v1/events", "app", json={"events": events}).status_code == 200
        yield a


def _spent(api: Api) -> list[dict]:
    return [e for e in api.ledger() if e["type"] == "privacy.spent"]


def test_two_queries_around_one_event_do_not_reveal_it(api: Api) -> None:
    """The attack of the finding, repeated until the budget runs out: the
    answers are noisy (they differ between identical queries), each is on the
    ledger with its ε, and the budget ends the attack."""
    answers = []
    for i in range(int(BUDGET / 0.5)):
        if i == 3:  # one user acts between the queries
            share = {"id": "the-one", "user": "u1", "video": "v1", "kind": "share",
                     "ts_ms": 99_000, "watch_ms": 0}  # fmt: skip
            assert api.call("POST", "/v1/events", "app", json={"events": [share]}).status_code
        r = api.call("GET", URL + "&epsilon=0.5", "rita")
        assert r.status_code == 200, r.text
        answers.append(r.json())
    views = [a["counts"].get("view", 0) for a in answers]  # the share leaves views alone
    assert len(set(views)) > 1, views  # identical queries, different answers
    assert all(a["privacy"]["contribution_bound"] == CONTRIBUTION for a in answers)
    assert [a["privacy"]["spent"] for a in answers][-1] == pytest.approx(BUDGET)
    spent = _spent(api)
    assert len(spent) == len(answers) and {e["principal"] for e in spent} == {"rita"}
    r = api.call("GET", URL + "&epsilon=0.5", "rita")
    assert r.status_code == 429 and r.headers["content-type"] == "application/problem+json"
    assert "spent" in r.json()["detail"]
    assert len(_spent(api)) == len(answers)  # a refused release spends nothing
    # the oversight body reads exact counts (over groups of at least 10 users:
    # the views of ten) and spends no budget
    exact = api.call("GET", "/v1/aggregates/events?by=kind", "olga")
    assert exact.status_code == 200 and exact.json()["counts"] == {"view": 10 + 40 + 8 * 5}
    assert "privacy" not in exact.json() and len(_spent(api)) == len(answers)


def test_the_mechanism_meets_its_epsilon() -> None:
    """OpenDP's privacy map: a change of one user's (clamped) records costs at
    most the ε asked for; a user with many events counts CONTRIBUTION times."""
    meas, scale = measurement(["a", "b"], 0.5)
    assert meas.map(d_in=CONTRIBUTION) <= 0.5 and scale == CONTRIBUTION / 0.5
    assert clamp([("u", "a")] * 50 + [("w", "b")]) == ["a"] * CONTRIBUTION + ["b"]


@pytest.mark.parametrize("epsilon", ["0", "-1", "1.5", "nan", "inf"])
def test_a_bad_epsilon_is_a_problem_and_spends_nothing(api: Api, epsilon: str) -> None:
    r = api.call("GET", URL + f"&epsilon={epsilon}", "rita")
    assert r.status_code == 422, r.text
    assert _spent(api) == []


def test_the_monitor_recomputes_every_budget_and_noise(
    api: Api, tmp_path: Path, log_signer
) -> None:
    """From the ledger alone: the releases the clean room made raise nothing;
    a release written around it with too little noise, and spends over the
    budget, are privacy-violation alerts."""
    from cleanroom.oversight import Watcher

    for _ in range(2):
        assert api.call("GET", URL, "rita").status_code == 200
    api.room.log.integrate()
    w = Watcher("http://testserver/log/", log_signer.verifier, tmp_path / "ov", client=api.client)
    assert [a.kind for a in w.run_once().new_alerts] == []
    now = _spent(api)[-1]["time_ms"]
    forged = {"type": "privacy.spent", "v": 1, "principal": "rita", "epsilon": 1.0,
              "scale": 0.5, "contribution_bound": CONTRIBUTION, "budget": BUDGET,
              "time_ms": now + 1}  # fmt: skip
    thin = api.room.log.append(forged)  # noise for ε 10, not 1
    over = [api.room.log.append({**forged, "scale": 5.0, "time_ms": now + 2 + i})
            for i in range(4)]  # 1 + 1 (the releases) + 1 + 4 > 5  # fmt: skip
    api.room.log.integrate()
    alerts = w.run_once().new_alerts
    assert [(a.kind, a.index) for a in alerts][:1] == [("privacy-violation", thin)]
    assert "noise scale" in alerts[0].message
    assert over[-1] in [a.index for a in alerts if "over the budget" in a.message]
