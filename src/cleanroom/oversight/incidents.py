"""Incidents: alerts grouped by their root cause, with a severity.

The monitor raises one alert per entry that breaks a rule, so one hidden
ranking change shows up as a hundred ``replay-mismatch`` alerts (one per feed
it changed) and one unapproved model as an alert per entry it touched. An
analyst works on causes: this module groups alerts whose cause is the same —
the same thing behind them (the ranking configuration the served feeds were
actually ranked with, the artifact, the boost, the policy version, the
principal), whatever rule each broke — into one incident named after its
gravest kind with a stable id, so acknowledging or
resolving it (on the ledger, ``oversight.incident`` entries) covers them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CRITICAL = (
    "fork", "tamper", "truncated", "rollback", "forged-review", "forged-oversight-identity",
    "oversight-root-changed", "replay-mismatch", "undeclared-boost", "unapproved-model",
)  # fmt: skip
HIGH = (
    "unapproved-release", "unapproved-boost", "decision-contradicts-policy",
    "export-without-screening", "export-without-approval", "undeclared-export",
    "privacy-violation", "policy-not-released", "oversight-access-revoked",
)  # fmt: skip
SEVERITIES = ("critical", "high", "medium")
# fields naming the cause (in the evidence, else in the entry the alert is
# about), most telling first, and the name the cause goes by: a feed ranked with
# an unapproved configuration and a replay that differs because of it share one
CAUSE_FIELDS = (
    ("served_config", "ranking_config"), ("ranking_config", "ranking_config"),
    ("artifact", "artifact"), ("boost", "boost"), ("policy_version", "policy_version"),
    ("policy", "policy"), ("model", "model"), ("principal", "principal"), ("by", "principal"),
)  # fmt: skip
WHAT = {
    "replay-mismatch": "served feeds differ from what the approved ranking gives",
    "unapproved-model": "a model served without an approved release",
    "unapproved-release": "a release deployed without its approvals",
    "undeclared-boost": "videos promoted without a declared boost",
    "unapproved-boost": "a boost applied before the oversight body approved it",
    "decision-contradicts-policy": "access decisions the released policy does not give",
    "export-without-screening": "data left without a screening of its recipient",
    "export-without-approval": "data left without the required approval",
    "undeclared-export": "a data flow that was not declared",
    "deletion-overdue": "a deletion order not carried out in time",
    "deletion-late": "a deletion order carried out late",
    "privacy-violation": "a release beyond its privacy budget",
    "oversight-access-revoked": "the oversight body's API tokens revoked by the operator",
    "fork": "two inconsistent checkpoints: the log forked",
    "tamper": "entries that do not hash to the signed tree",
    "truncated": "the log shrank",
    "rollback": "a checkpoint older than one already seen",
}


def severity(kind: str) -> str:
    if kind in CRITICAL:
        return "critical"
    return "high" if kind in HIGH else "medium"


@dataclass
class Incident:
    """Alerts with one cause: its id, kind, severity and the alerts."""

    id: str
    kind: str
    cause: str
    severity: str
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def entries(self) -> list[int]:
        found: set[int] = set()
        for a in self.alerts:
            if isinstance(a.get("index"), int):
                found.add(a["index"])
            found.update(i for i in a.get("evidence", {}).get("entries", []) if isinstance(i, int))
        return sorted(found)

    @property
    def first_ms(self) -> int:
        return min(int(a.get("at_ms", 0)) for a in self.alerts)

    @property
    def last_ms(self) -> int:
        return max(int(a.get("at_ms", 0)) for a in self.alerts)

    @property
    def kinds(self) -> dict[str, int]:
        """How many alerts of each kind."""
        return dict(Counter(str(a.get("kind")) for a in self.alerts))

    @property
    def summary(self) -> str:
        what = WHAT.get(self.kind, self.kind.replace("-", " "))
        if self.cause.startswith("ranking_config="):
            what = "feeds ranked with a configuration no release approved"
        n = len(self.alerts)
        return f"{what} ({n} alert{'s' if n != 1 else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "cause": self.cause, "severity": self.severity,
            "summary": self.summary, "alerts": len(self.alerts), "entries": self.entries,
            "kinds": self.kinds,
            "first_ms": self.first_ms, "last_ms": self.last_ms,
        }  # fmt: skip


def cause_of(alert: dict[str, Any]) -> str:
    """What is behind an alert: ``name=value`` of the first cause field its
    evidence — or the entry it is about — names, else the alert itself."""
    evidence = alert.get("evidence") or {}
    places = [evidence]
    proven = evidence.get("proven")
    if isinstance(proven, dict):
        about = proven.get(str(alert.get("index")))
        if isinstance(about, dict) and isinstance(about.get("entry"), str):
            with contextlib.suppress(ValueError):
                places.append(json.loads(about["entry"]))
    for field_name, called in CAUSE_FIELDS:
        for place in places:
            value = place.get(field_name) if isinstance(place, dict) else None
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                return f"{called}={value}"
    return f"alert={alert.get('id', '')}"


def group(alerts: Iterable[dict[str, Any]]) -> list[Incident]:
    """Incidents of ``alerts`` (as the monitor keeps them), most severe and
    most recent first."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    by_cause: dict[str, Incident] = {}
    for a in alerts:
        kind = str(a.get("kind", ""))
        cause = cause_of(a)
        if cause not in by_cause:
            digest = hashlib.sha256(cause.encode()).hexdigest()[:12]
            by_cause[cause] = Incident(f"inc-{digest}", kind, cause, severity(kind))
        found = by_cause[cause]
        found.alerts.append(a)
        if rank[severity(kind)] < rank[found.severity]:  # named after its gravest kind
            found.kind, found.severity = kind, severity(kind)
    return sorted(by_cause.values(), key=lambda i: (rank[i.severity], -i.last_ms, i.id))


def latest_actions(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each incident's latest ``oversight.incident`` entry (``entries`` oldest first)."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("type") == "oversight.incident" and isinstance(e.get("incident"), str):
            out[e["incident"]] = e
    return out


STATUS_OF = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "open"}


def status_of(incident: Incident, actions: dict[str, dict[str, Any]]) -> str:
    """open, acknowledged or resolved: what the latest action on record says."""
    act = actions.get(incident.id)
    return STATUS_OF.get(str(act.get("action")), "open") if act else "open"
