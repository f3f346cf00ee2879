"""Alerts the monitor raises: what rule, about which entry, with the evidence
(the entries themselves and their inclusion proofs against the verified
checkpoint). Kept in ``alerts.jsonl`` in the monitor's state directory (one
alert once, however often the monitor runs) and posted to a webhook if one
is configured."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

KINDS = (
    "malformed-entry",
    "policy-not-released",
    "decision-contradicts-policy",
    "export-without-screening",
    "export-without-approval",
    "undeclared-export",
    "unapproved-model",
    "unapproved-release",
    "deletion-overdue",
    "deletion-late",
    "fork",
    "tamper",
    "replay-mismatch",
    "unapproved-boost",
    "undeclared-boost",
)


@dataclass
class Alert:
    kind: str
    index: int | None  # the ledger entry the alert is about
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    at_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.index if self.index is not None else self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}


class AlertStore:
    """Append-only alerts file with deduplication by alert id."""

    def __init__(self, state_dir: Path, webhook: str | None = None) -> None:
        self.path = Path(state_dir) / "alerts.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.webhook = webhook
        self.webhook_errors: list[str] = []
        self._ids: set[str] | None = None  # the ids on file, read once

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def add(self, alerts: list[Alert]) -> list[Alert]:
        """Persist the alerts not raised before; returns those (and posts them)."""
        if self._ids is None:
            self._ids = {a["id"] for a in self.all()}
        new = list({a.id: a for a in alerts if a.id not in self._ids}.values())
        if not new:
            return []
        self._ids.update(a.id for a in new)
        with open(self.path, "a") as f:
            for a in new:
                f.write(json.dumps(a.as_json(), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.webhook:
            for a in new:
                try:
                    httpx.post(self.webhook, json=a.as_json(), timeout=10).raise_for_status()
                except httpx.HTTPError as e:
                    self.webhook_errors.append(f"{a.id}: {e}")
        return new
