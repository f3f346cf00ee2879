"""Alerts the monitor raises: what rule, about which entry, with the evidence
(the entries themselves and their inclusion proofs against the verified
checkpoint). Kept in ``alerts.jsonl`` in the monitor's state directory (one
alert once, however often the monitor runs) and posted to a webhook if one
is configured."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
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
    "forged-review",
    "forged-oversight-identity",
    "oversight-root-changed",
    "truncated",
    "rollback",
    "privacy-violation",
    "oversight-access-revoked",
)
# A webhook delivery is tried this many times, waiting 0.5 s, 1 s, 2 s… between.
WEBHOOK_ATTEMPTS = 4
WEBHOOK_FIRST_WAIT_S = 0.5
SIGNATURE_HEADER = "X-Cleanroom-Signature"


@dataclass
class Alert:
    """Something the monitor found: its kind, the entry it is about, a message and the
    evidence."""

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
                self._post(a)
        return new

    def webhook_key(self) -> bytes:
        """The secret the webhook's receiver checks bodies with (made once,
        kept 0600 in the state directory: ``webhook.key``)."""
        path = self.path.parent / "webhook.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        return path.read_text().strip().encode()

    def _post(self, alert: Alert) -> None:
        """POST one alert: a canonical JSON body signed with HMAC-SHA256
        (``X-Cleanroom-Signature: sha256=<hex>``), retried with exponential
        backoff on a network error or a 5xx/429 answer."""
        body = json.dumps(alert.as_json(), sort_keys=True, separators=(",", ":")).encode()
        mac = hmac.new(self.webhook_key(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: f"sha256={mac}"}
        wait, last = WEBHOOK_FIRST_WAIT_S, ""
        for attempt in range(WEBHOOK_ATTEMPTS):
            try:
                r = httpx.post(self.webhook or "", content=body, headers=headers, timeout=10)
                if r.status_code < 300:
                    return
                last = f"HTTP {r.status_code}"
                if r.status_code < 500 and r.status_code != 429:
                    break  # the receiver refuses it: trying again changes nothing
            except httpx.HTTPError as e:
                last = str(e) or type(e).__name__
            if attempt + 1 < WEBHOOK_ATTEMPTS:
                time.sleep(wait)
                wait *= 2
        self.webhook_errors.append(f"{alert.id}: {last} (after {attempt + 1} attempts)")
