"""Alerts grouped by root cause: one hidden ranking change is one incident
however many feeds (and rules) it touched; unrelated alerts stay apart; the
incident is named after its gravest kind and its id is stable."""

from __future__ import annotations

import json

from cleanroom.oversight.alerts import Alert
from cleanroom.oversight.incidents import cause_of, group

CONFIG = "sha256:" + "ab" * 32


def _feed_alerts(n: int, config: str = CONFIG) -> list[dict]:
    out = []
    for i in range(n):
        out.append(Alert("replay-mismatch", i, "differs",
                         {"entries": [i], "served_config": config}).as_json())  # fmt: skip
        entry = json.dumps({"type": "feed.served", "ranking_config": config})
        proven = {str(i): {"entry": entry}}
        out.append(Alert("unapproved-model", i, "unapproved",
                         {"entries": [i], "proven": proven}).as_json())  # fmt: skip
    return out


def test_one_hidden_ranking_change_is_one_incident() -> None:
    incidents = group(_feed_alerts(51))
    assert len(incidents) == 1
    inc = incidents[0]
    assert len(inc.alerts) == 102 and inc.entries == list(range(51))
    assert inc.kinds == {"replay-mismatch": 51, "unapproved-model": 51}
    assert inc.severity == "critical" and inc.cause == f"ranking_config={CONFIG}"
    assert "configuration no release approved" in inc.summary


def test_unrelated_alerts_stay_apart_and_the_gravest_comes_first() -> None:
    other = "sha256:" + "cd" * 32
    alerts = [
        *_feed_alerts(3),
        *_feed_alerts(2, other),
        Alert("deletion-late", 9, "late", {"entries": [9]}).as_json(),
        Alert("deletion-late", 10, "late", {"entries": [10]}).as_json(),
        Alert("forged-review", 11, "forged", {"artifact": "sha256:ee"}).as_json(),
        Alert("unapproved-release", 12, "deployed", {"artifact": "sha256:ee"}).as_json(),
    ]
    incidents = group(alerts)
    causes = [i.cause for i in incidents]
    assert len(incidents) == 5  # two configs, one artifact, two late deletions
    assert causes.count("artifact=sha256:ee") == 1
    assert [i.severity for i in incidents][-2:] == ["medium", "medium"]
    art = next(i for i in incidents if i.cause == "artifact=sha256:ee")
    assert art.kind == "forged-review" and len(art.alerts) == 2
    assert group(list(reversed(alerts)))[0].id in {i.id for i in incidents}  # stable ids


def test_an_alert_without_a_named_cause_is_its_own() -> None:
    a = Alert("tamper", None, "entry 4 rehashes differently").as_json()
    assert cause_of(a) == f"alert={a['id']}"


def test_the_command_line_lists_incidents(tmp_path) -> None:
    from cleanroom.oversight.alerts import AlertStore
    from tests.support import run_cli

    store = AlertStore(tmp_path)
    store.path.write_text("".join(json.dumps(a) + "\n" for a in _feed_alerts(4)))
    (tmp_path / "watch.json").write_text("{}")  # a monitor ran here
    out = run_cli(["oversight", "alerts", "--state-dir", str(tmp_path), "--incidents"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1 and CONFIG in out.stdout
    assert "8 alerts in 1 incidents" in out.stderr
    js = run_cli(["oversight", "alerts", "--state-dir", str(tmp_path), "--incidents", "--json"],
                 tmp_path)  # fmt: skip
    assert json.loads(js.stdout)["kinds"] == {"replay-mismatch": 4, "unapproved-model": 4}


def test_the_monitors_state_defaults_to_the_data_directory(tmp_path) -> None:
    from tests.support import run_cli

    state = tmp_path / "dd" / "oversight"
    state.mkdir(parents=True)
    (state / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in _feed_alerts(2)))
    (state / "watch.json").write_text("{}")
    out = run_cli(["oversight", "alerts", "--incidents"], tmp_path / "dd")
    assert out.returncode == 0 and "4 alerts in 1 incidents" in out.stderr, out.stderr
