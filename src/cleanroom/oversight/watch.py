"""The oversight body's monitor: verify the log over HTTP with pinned keys
(``cleanroom.ledger.client.Monitor``: signature, witness quorum, consistency
with what it verified before, every entry against the signed tree), then run
the rules on every new entry. A fork or altered entries are alerts too, with
the evidence the monitor kept. Runs on the oversight body's own machine:
it needs the log's URL and public key, nothing of the clean room."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cleanroom.ledger import proofs
from cleanroom.ledger.client import Monitor, TamperError
from cleanroom.ledger.entries import decode_entry
from cleanroom.ledger.errors import InconsistencyError, LedgerError, NotFoundError
from cleanroom.ledger.hashing import b64
from cleanroom.ledger.note import Verifier
from cleanroom.ledger.tiles import TILE_WIDTH, tile_width_for
from cleanroom.oversight.alerts import Alert, AlertStore
from cleanroom.oversight.incidents import group
from cleanroom.oversight.policy import PolicySource
from cleanroom.oversight.replay import ReplayReport, replay_audit
from cleanroom.oversight.rules import RuleEngine
from cleanroom.oversight.witness import MonitorWitness, has_key


@dataclass
class WatchReport:
    """One run of the watcher: how far it verified, what it checked and the new alerts."""

    size: int
    entries_checked: int
    new_alerts: list[Alert] = field(default_factory=list)
    webhook_errors: list[str] = field(default_factory=list)


class Watcher:
    """The oversight body's monitor: verifies the log over HTTP, checks every entry against
    the rules, cosigns as a witness, replays feeds and keeps the alerts."""

    def __init__(
        self,
        url: str,
        log_key: Verifier,
        state_dir: Path,
        *,
        witnesses: list[Verifier] | None = None,
        quorum: int = 0,
        webhook: str | None = None,
        client: httpx.Client | None = None,
        api_url: str | None = None,
        token: str | None = None,
        oversight_vkey: str | None = None,
    ) -> None:
        """With ``api_url`` and an oversight ``token`` the released policy texts
        are fetched and every access entry is decided again. ``oversight_vkey``
        is the oversight body's own root key: the ledger must name it, and every
        oversight reviewer and principal must come with a statement it signed."""
        self.state_dir = Path(state_dir)
        self.oversight_vkey = oversight_vkey
        self.policies = PolicySource(api_url, token, client) if api_url and token else None
        self.monitor = Monitor(
            url,
            log_key,
            self.state_dir / "log",
            witnesses=witnesses,
            quorum=quorum,
            client=client,
        )
        # the monitor as a witness, when its state directory holds a witness key
        self.witness = (
            MonitorWitness(self.state_dir, self.monitor.origin, log_key.vkey)
            if has_key(self.state_dir)
            else None
        )
        self.alerts = AlertStore(self.state_dir, webhook)
        self.rules_file = self.state_dir / "rules.json"
        (self.state_dir / "watch.json").write_text(
            json.dumps(
                {
                    "url": url,
                    "vkey": log_key.vkey,
                    "witnesses": [w.vkey for w in witnesses or []],
                    "quorum": quorum,
                    "webhook": webhook,
                    "oversight_vkey": oversight_vkey,
                }
            )
        )

    @classmethod
    def for_state(cls, state_dir: Path, client: httpx.Client | None = None) -> Watcher:
        """The watcher that last ran with this state directory."""
        from cleanroom.ledger.note import parse_verifier

        path = Path(state_dir) / "watch.json"
        if not path.exists():
            raise LedgerError(
                f"no monitor has run with {state_dir}", hint="run `cleanroom oversight watch`"
            )
        try:
            c = json.loads(path.read_text())
            url, vkey = c["url"], parse_verifier(c["vkey"])
            witnesses = [parse_verifier(w) for w in c["witnesses"]]
            quorum = int(c["quorum"])
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise LedgerError(
                f"{path} is not a monitor's settings ({type(e).__name__}: {e})",
                hint="run `cleanroom oversight watch` with this state directory again",
            ) from None
        return cls(url, vkey, Path(state_dir), witnesses=witnesses, quorum=quorum,
                   webhook=c.get("webhook"), client=client,
                   oversight_vkey=c.get("oversight_vkey"))  # fmt: skip

    def _engine(self) -> RuleEngine:
        source = self.policies.get if self.policies is not None else None
        state = json.loads(self.rules_file.read_text()) if self.rules_file.exists() else None
        return RuleEngine(
            state, source, oversight_vkey=self.oversight_vkey, origin=self.monitor.origin
        )

    def _save(self, engine: RuleEngine) -> None:
        tmp = self.rules_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(engine.state()))
        os.replace(tmp, self.rules_file)

    def run_once(self, now_ms: int | None = None) -> WatchReport:
        """Verify the log's newest checkpoint and check every new entry."""
        engine = self._engine()
        raised: list[Alert] = []
        bodies: dict[int, bytes] = {}

        def on_entry(index: int, body: bytes) -> None:
            if index <= engine.last_index:
                return  # checked in an earlier run (a full audit reads them again)
            try:
                entry = decode_entry(body)
            except LedgerError as e:
                raised.append(Alert("malformed-entry", index, f"entry {index}: {e}"))
                return
            found = engine.feed(index, entry)
            if found:  # kept for the evidence (other entries are read back if cited)
                bodies[index] = body
                raised.extend(found)

        try:
            report = self.monitor.verify(on_entry=on_entry)
        except NotFoundError as e:  # what a verified checkpoint covers is gone
            state = self.monitor.load_state()
            if state is None:
                raise
            gone = Alert(
                "truncated", None,
                f"the log no longer serves entries or tiles it signed before "
                f"(verified size {state.size:,}): {e.message}",
                {"detail": e.message, "verified_checkpoint": state.note},
            )  # fmt: skip
            new = self.alerts.add([gone])
            return WatchReport(0, 0, new, self.alerts.webhook_errors)
        except InconsistencyError as e:
            forks = [Alert("fork", None, e.message, {"detail": str(e)}), *self._witnessed()]
            new = self.alerts.add(forks)
            return WatchReport(0, 0, new, self.alerts.webhook_errors)
        except TamperError as e:
            new = self.alerts.add(
                [
                    Alert(
                        "tamper",
                        e.indices[0] if e.indices else None,
                        e.message,
                        {"entries": e.indices[:100]},
                    )
                ]
            )
            return WatchReport(0, 0, new, self.alerts.webhook_errors)
        if report.rolled_back_from is not None:
            raised.append(
                Alert(
                    "rollback", None,
                    f"the log serves a checkpoint of size {report.size:,}, older than the one "
                    f"of size {report.old_size:,} verified before (a rollback or a stale copy)",
                    {"verified_checkpoint": report.rolled_back_from, "served_size": report.size},
                )
            )  # fmt: skip
        raised.extend(engine.finish(now_ms if now_ms is not None else int(time.time() * 1000)))
        raised.extend(self._witnessed())
        self._attach_evidence(raised, report.size, bodies)
        self._save(engine)
        new = self.alerts.add(raised)
        return WatchReport(report.size, report.entries_checked, new, self.alerts.webhook_errors)

    def served(self) -> list[list[Any]]:
        """The served-feed commitments verified so far (the newest), as
        ``[index, feed, list_digest, ranking_config, model_version]``."""
        return self._engine().served

    def _witnessed(self) -> list[Alert]:
        """What the monitor's own witness saw: refused split views, and a
        cosigned checkpoint outside the verified history."""
        return self.witness.check(self.monitor) if self.witness is not None else []

    def replay(
        self,
        api_url: str,
        token: str,
        *,
        sample: int = 200,
        seed: int = 0,
        client: httpx.Client | None = None,
    ) -> tuple[ReplayReport, list[Alert]]:
        """The replay audit over the served feeds the monitor has verified;
        new mismatches become alerts (with their proofs)."""
        report, found = replay_audit(
            self.served(), api_url, token, sample=sample, seed=seed, client=client
        )
        state = self.monitor.load_state()
        if found and state is not None:
            self._attach_evidence(found, state.size, {})
        return report, self.alerts.add(found)

    def verified(
        self,
        api_url: str,
        token: str,
        *,
        sample: int = 500,
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """What the monitor vouches for, as one JSON document (the audit report
        shows it): the log verified up to its newest checkpoint, the replay
        audit of the served feeds, and the alerts so far."""
        self.run_once()
        report, _ = self.replay(api_url, token, sample=sample, client=client)
        state = self.monitor.load_state()
        alerts = self.alerts.all()
        return {
            "approved_config": report.approved_config,
            "checkpoint": {
                "size": state.size if state else 0,
                "root": b64(state.root) if state else "",
                "origin": state.origin if state else "",
                "verified_by_monitor": True,
            },
            "replay": report.as_json(),
            "alerts": {
                "total": len(alerts),
                "by_kind": dict(Counter(a["kind"] for a in alerts)),
                "latest": [
                    {"kind": a["kind"], "index": a["index"], "message": a["message"]}
                    for a in alerts[-10:]
                ],
                "incidents": [i.to_dict() for i in group(alerts)],  # every alert, by cause
            },
        }

    def _attach_evidence(self, alerts: list[Alert], size: int, bodies: dict[int, bytes]) -> None:
        """Each alert's entries with their inclusion proofs in the verified tree."""
        if not alerts:
            return
        reader = self.monitor.tiles.reader(size)
        bundles: dict[int, list[bytes]] = {}  # each entry bundle read once
        for a in alerts:
            shown: dict[str, Any] = {}
            for i in a.evidence.get("entries", [])[:20]:
                if not (0 <= i < size):
                    continue
                body = bodies.get(i) or self._entry(i, size, bundles)
                shown[str(i)] = {
                    "entry": body.decode("utf-8", errors="replace"),
                    "inclusion_proof": [
                        b64(h) for h in proofs.inclusion_proof(reader.node, i, size)
                    ],
                    "tree_size": size,
                }
            if shown:
                a.evidence["proven"] = shown

    def _entry(self, index: int, size: int, bundles: dict[int, list[bytes]]) -> bytes:
        n = index // TILE_WIDTH
        if n not in bundles:
            bundles[n] = self.monitor.tiles.bundle(n, tile_width_for(0, n, size))
        return bundles[n][index % TILE_WIDTH]
