"""One clean room assembled from a data directory: database, log, keys, vault,
principals and gate, wired the one way they are meant to be."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import ConfigError
from cleanroom.gate import Deletions, Gate, Principal, Principals
from cleanroom.gate.boosts import BoostRegistry
from cleanroom.gate.egress import Egress
from cleanroom.gate.policy import shipped
from cleanroom.gate.principals import NothingToRevoke, PrincipalError, UnknownPrincipal
from cleanroom.gate.privacy import PrivacyBudget
from cleanroom.gate.screening import ScreeningDesk
from cleanroom.ledger.authority import root_verifier
from cleanroom.ledger.dsse import as_document
from cleanroom.ledger.log import Log
from cleanroom.ledger.witness import WitnessEndpoint
from cleanroom.release.registry import Registry
from cleanroom.room.config import Config, DataDir
from cleanroom.storage import Database
from cleanroom.vault import KeyStore, LocalKeyring, ResidencyPolicy, Site, Vault

# Service principals every clean room has (created by ``cleanroom init``).
SYSTEM_PRINCIPALS = (
    ("recommender", "service", "operator", "recommender"),
    ("deletion-service", "service", "operator", "deletion"),
    ("ledger-writer", "service", "operator", "ledger"),
    ("screening-service", "service", "operator", "screening"),
)


def checked_site(config: Config) -> tuple[Site, ResidencyPolicy]:
    """This site and the residency policy, after checking the policy allows the
    site (raises ResidencyError otherwise: nothing may run here)."""
    site = Site(config.site.name, config.site.jurisdiction, config.site.operator)
    policy = ResidencyPolicy(
        tuple(config.residency.jurisdictions), tuple(config.residency.operators)
    )
    policy.check_site(site)
    return site, policy


def affiliates_from(config: Config) -> dt.date | None:
    value = config.screening.affiliates_rule_from
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"screening.affiliates_rule_from {value!r} is not an ISO date (YYYY-MM-DD)"
        ) from None


def keyring(dd: DataDir) -> LocalKeyring:
    if not dd.keyring_file.exists():
        dd.keys.mkdir(parents=True, exist_ok=True)
        os.chmod(dd.keys, 0o700)
        return LocalKeyring.create(dd.keyring_file)
    return LocalKeyring(dd.keyring_file)


@dataclass
class CleanRoom:
    """One clean room: its database, log, keys, vault, principals, gate and the services built
    on them."""

    config: Config
    db: Database
    keystore_db: Database
    log: Log
    vault: Vault
    principals: Principals
    gate: Gate
    deletions: Deletions
    releases: Registry
    screening: ScreeningDesk
    egress: Egress
    boosts: BoostRegistry
    data_dir: DataDir | None = None
    privacy: PrivacyBudget | None = None

    @classmethod
    def open(
        cls, data_dir: DataDir | str | None = None, *, start: bool = True, background: bool = True
    ) -> CleanRoom:
        """Open the clean room of a data directory. The residency policy is checked
        first: nothing starts on a site it does not allow."""
        dd = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
        config = dd.load()
        site, residency = checked_site(config)
        db = dd.database(config)
        keystore_db = Database(dd.keystore_url(config))
        endpoints = [WitnessEndpoint.parse(w.vkey, w.url) for w in config.witnesses]
        log = Log(db, config.origin, dd.read_key("log"), witnesses=endpoints)
        if start:
            log.start(background=background)
        vault = Vault(db, KeyStore(keystore_db, keyring(dd)), site, residency)
        gate = Gate(vault, log, shipped())
        desk = ScreeningDesk(db, log, affiliates_from=affiliates_from(config))
        root = root_verifier(config.oversight_vkey) if config.oversight_vkey else None
        releases = Registry(db, log, oversight_root=root, origin=config.origin)
        privacy = PrivacyBudget(db, log)
        room = cls(
            config,
            db,
            keystore_db,
            log,
            vault,
            Principals(db, oversight_root=root, origin=config.origin),
            gate,
            Deletions(gate, db),
            releases,
            desk,
            Egress(gate, desk, min_group=config.screening.min_group_size, privacy=privacy),
            BoostRegistry(gate, reviewer=releases.reviewer),
            dd,
            privacy,
        )
        room.ensure_system_principals()
        dd.restrict()
        vault.on_delete(room.principals.forget_subject)  # an erased user's tokens go with them
        return room

    def system(self, name: str) -> Principal:
        return self.principals.get(name)

    def event_aggregates(
        self, principal: Principal, *, by: str, min_group: int, epsilon: float, purpose: str,
        route: str,
    ) -> dict[str, Any]:  # fmt: skip
        """Event counts by kind or video, as the gate allows ``principal``:
        exact over groups of at least ``min_group`` users for the oversight
        body; for anyone else a differentially private release charged to
        their budget and recorded (``privacy.spent``, naming ``route``)."""
        grant = self.gate.require(
            principal, "read", "Aggregates", purpose=purpose, all_subjects=True
        )
        out: dict[str, Any] = {"by": by, "min_group": min_group, "decision": grant.decision}
        if principal.org == "oversight" or self.privacy is None:
            return {**out, "counts": self.vault.aggregate_counts(grant, by=by, min_group=min_group)}
        categories, records = self.vault.aggregate_records(grant, by=by)
        release = self.privacy.release(
            principal.name, records, categories, epsilon=epsilon, min_group=min_group,
            query={"route": route, "by": by, "min_group": min_group},
        )  # fmt: skip
        return {**out, **release.to_dict()}

    def add_principal(self, principal: Principal, statement: Any = None) -> Principal:
        """Register a principal. One of the oversight body needs the oversight
        root's statement adding it, and goes on the record (``principal.oversight``)
        so the monitor knows who speaks for the oversight body."""
        if principal.org != "oversight":
            return self.principals.add(principal, statement)
        st = self.principals.check_statement(principal, statement)
        try:
            self.principals.get(principal.name)
            raise PrincipalError(f"principal {principal.name!r} already exists")
        except UnknownPrincipal:
            pass
        p = principal
        self._record_overseer("add", p.name, statement, st.digest,
                              kind=p.kind, role=p.role, jurisdiction=p.jurisdiction)  # fmt: skip
        return self.principals.add(principal, statement)

    def ensure_system_principals(self) -> None:
        existing = {p.name for p, _ in self.principals.list()}
        for name, kind, org, role in SYSTEM_PRINCIPALS:
            if name not in existing:
                self.principals.add(
                    Principal(name, kind, org, role, self.config.site.jurisdiction, 1)
                )

    def remove_principal(self, name: str, statement: Any = None) -> int:
        """Disable a principal and revoke its tokens. One of the oversight body
        goes only by the oversight root's statement removing it, on the record
        (``principal.oversight``, action remove). Returns the tokens revoked."""
        p = self.principals.get(name)
        if p.org == "oversight":
            st = self.principals.check_removal(p, statement)
            self._record_overseer("remove", name, statement, st.digest)
        return self.principals.disable(name)

    def token_holders(self, who: Principal) -> tuple[list[dict[str, Any]], int | None]:
        """Every principal (no data subject named) with its live tokens' ids and
        times, as the gate lets ``who`` read them (``read`` on ``Tokens``: the
        operator's and the oversight body's staff); and the decision's index."""
        grant = self.gate.require(who, "read", "Tokens")
        rows = []
        for p, live in self.principals.holders():
            tokens = [t.to_dict() for t in live]
            rows.append({"name": p.name, "kind": p.kind, "org": p.org, "role": p.role,
                         "jurisdiction": p.jurisdiction, "clearance": p.clearance,
                         "disabled": p.disabled, "live_tokens": len(tokens),
                         "tokens": tokens})  # fmt: skip
        return rows, grant.decision

    def revoke_tokens(
        self,
        name: str,
        token_id: str | None = None,
        *,
        by: str,
        reason: str,
        who: Principal | None = None,
    ) -> dict[str, Any]:
        """Revoke ``name``'s live tokens (all, or the one ``token_id``) on the
        record: a ``principal.tokens_revoked`` entry (whose, their org, the token
        ids, by whom, why) commits with the revocation, one transaction. Asked by
        ``who`` (the API, the console), the gate decides first (``write`` on
        ``Tokens``); on the operator's machine ``by`` names the command."""
        if who is not None:
            self.gate.require(who, "write", "Tokens")
        target = self.principals.get(name)
        live = [t.id for t in self.principals.tokens(name) if t.live]
        if token_id is not None and token_id not in live:
            raise NothingToRevoke(f"{name!r} holds no live token {token_id!r}")
        ids = live if token_id is None else [token_id]
        if not ids:
            raise NothingToRevoke(f"{name!r} holds no live token")
        entry = {"type": "principal.tokens_revoked", "v": 1, "principal": name,
                 "org": target.org, "tokens": ids, "by": by, "reason": reason}  # fmt: skip
        revoke = self.principals.revoke_on
        index = self.log.append(entry, also=lambda conn: revoke(conn, name, ids) and None)
        self.principals.forget_verified()
        return {"principal": name, "revoked": ids, "ledger_index": index}

    def pin_oversight_root(self, vkey: str, *, by: str) -> int:
        """Trust ``vkey`` as the oversight body's root (principals and reviewers
        of the oversight body are checked against it) and put it on the record."""
        index = self.releases.pin_oversight_root(vkey, by=by)
        self.principals.oversight_root = self.releases.oversight_root
        return index

    def _record_overseer(
        self, action: str, name: str, statement: Any, digest: str, **fields: str
    ) -> int:
        return self.log.append(
            {"type": "principal.oversight", "v": 1, "action": action, "principal": name,
             **fields, "statement": as_document(statement), "statement_digest": digest}
        )  # fmt: skip

    def close(self) -> None:
        self.log.close()
        self.db.dispose()
        self.keystore_db.dispose()

    def __enter__(self) -> CleanRoom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def issue_token(data_dir: DataDir | str, name: str) -> str:
    """A fresh API token for principal ``name`` (system principals exist once a
    clean room was opened; this opens it without starting the log)."""
    room = CleanRoom.open(data_dir, start=False)
    try:
        return room.principals.issue_token(name)
    finally:
        room.close()
