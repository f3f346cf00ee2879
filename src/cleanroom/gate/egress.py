"""The egress gate: every export of data out of the clean room.

An export names a recipient (and its country), what it exports and why. In
order, and all of it on the record:

1. the recipient is screened against the loaded lists (a ledger entry); a
   listed recipient, or one a listing reaches through ownership, is refused;
2. the access is decided by the Cedar policies like every other (action
   ``export``; protected data never leaves; aggregates and the interoperable
   video catalogue may, to the principals and for the purposes the policies
   allow) — a ledger entry;
3. aggregates are reported only over groups of at least the minimum group
   size (smaller groups are suppressed; a request for smaller groups is refused);
4. the U.S. Data Security Program's bulk thresholds (28 CFR 202.205) are
   enforced toward countries of concern: an export that would bring the U.S.
   persons of one data category sent to one recipient over the preceding
   twelve months above the threshold (e.g. covered personal identifiers of more
   than 100,000 U.S. persons) is refused;
5. the flow — allowed or refused, with the reasons — is a ``egress.flow`` ledger
   entry the oversight body can count by destination and data class (its
   monitor does, from the entries it verified); ``Egress.summary`` counts them
   here from the table that indexes those entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import Connection

from cleanroom.gate.gate import PURPOSES, RESOURCE_CLASSES, Gate
from cleanroom.gate.principals import Principal
from cleanroom.gate.privacy import DEFAULT_EPSILON, PrivacyBudget
from cleanroom.gate.screening import ScreeningDesk
from cleanroom.screen.errors import ScreeningInputError
from cleanroom.screen.index import check_name
from cleanroom.screen.infra import COUNTRIES_OF_CONCERN, country_code
from cleanroom.screen.screener import query_key
from cleanroom.storage import Database, Migration, migrate

# What can be exported: its resource class (and so its data class) and the
# DSP data category it carries, if any.
KINDS: dict[str, tuple[str, str | None]] = {
    "aggregates": ("Aggregates", None),
    "videos": ("Videos", "covered_personal_identifiers"),  # creator ids are identifiers
    "user_data": ("UserData", "covered_personal_identifiers"),
}
# 28 CFR 202.205: bulk thresholds, U.S. persons (or devices) over 12 months.
DSP_THRESHOLDS = {
    "human_genomic": 100,
    "human_omic": 1_000,
    "biometric": 1_000,
    "precise_geolocation": 1_000,
    "personal_health": 10_000,
    "personal_financial": 10_000,
    "covered_personal_identifiers": 100_000,
}
DSP_WINDOW_MS = 365 * 24 * 3600 * 1000
DEFAULT_MIN_GROUP = 10

_meta = MetaData()
flows_t = Table(
    "egress_flows",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient_key", String(512), nullable=False, index=True),
    Column("country", String(8), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data_class", String(16), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("dsp_category", String(40), nullable=False),
    Column("us_persons", BigInteger, nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn, tables=[flows_t])


MIGRATIONS = [Migration("egress", 1, "export flows (index of egress.flow entries)", _create)]


@dataclass(frozen=True)
class ExportRequest:
    """An export asked for: to whom, to which country, of what, why."""

    recipient: str
    country: str
    kind: str
    purpose: str = "research"
    by: str = "kind"  # aggregates: by "kind" or "video"
    min_group_size: int = DEFAULT_MIN_GROUP
    epsilon: float = DEFAULT_EPSILON  # aggregates: the privacy budget this export spends


@dataclass
class ExportResult:
    """The egress decision: allowed or not, why, and its ledger entries."""

    allowed: bool
    reasons: list[str]
    entry: int
    screening_entry: int | None
    decision_entry: int | None
    data: Any = None
    rows: int = 0
    suppressed: int = 0
    us_persons: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reasons": self.reasons,
            "ledger_index": self.entry,
            "screening_entry": self.screening_entry,
            "decision_entry": self.decision_entry,
            "rows": self.rows,
            "suppressed_groups": self.suppressed,
            "us_persons": self.us_persons,
            **self.details,
            "data": self.data,
        }


class Egress:
    """Every flow out of the clean room: screened, decided by the gate, aggregated with a
    minimum group size and differential privacy, on the ledger."""

    def __init__(
        self,
        gate: Gate,
        desk: ScreeningDesk,
        *,
        min_group: int = DEFAULT_MIN_GROUP,
        privacy: PrivacyBudget | None = None,
    ) -> None:
        """With ``privacy``, exported aggregates are differentially private
        releases charged to the exporting principal's budget."""
        self.gate = gate
        self.desk = desk
        self.min_group = min_group
        self.privacy = privacy
        self.db: Database = gate.vault.db
        migrate(self.db, MIGRATIONS)

    def _check(self, req: ExportRequest) -> ExportRequest:
        if req.kind not in KINDS:
            raise ScreeningInputError(
                f"unknown export kind {req.kind!r}", hint=f"kinds: {', '.join(KINDS)}"
            )
        country = country_code(req.country or "")
        if not (len(country) == 2 and country.isalpha()):
            raise ScreeningInputError(
                f"country {req.country!r} is not an ISO 3166 alpha-2 code", hint="e.g. US, DE, CN"
            )
        if not req.purpose or req.purpose not in PURPOSES:
            raise ScreeningInputError(
                f"unknown purpose {req.purpose!r}",
                hint=f"purposes: {', '.join(p for p in PURPOSES if p)}",
            )
        check_name(req.recipient)
        if req.by not in ("kind", "video"):
            raise ScreeningInputError("aggregates are by 'kind' or 'video'")
        if not isinstance(req.min_group_size, int) or req.min_group_size < 1:
            raise ScreeningInputError("min_group_size is a positive whole number")
        return replace(req, country=country)

    def export(self, principal: Principal, request: ExportRequest) -> ExportResult:
        req = self._check(request)
        resource, category = KINDS[req.kind]
        data_class = RESOURCE_CLASSES[resource]
        reasons: list[str] = []
        screening, s_entry = self.desk.screen(
            req.recipient, "any", by=principal.name, purpose="egress"
        )
        if screening.decision == "match":
            reasons += [f"recipient is listed: {r}" for r in screening.reasons()]
        decision = self.gate.decide(principal, "export", resource, purpose=req.purpose,
                                    all_subjects=True)  # fmt: skip
        if not decision.allowed:
            reasons.append(f"policy: {decision.problem_message()}")
        if req.kind == "aggregates" and req.min_group_size < self.min_group:
            reasons.append(
                f"aggregates need groups of at least {self.min_group} users"
                f" (asked for {req.min_group_size})"
            )
        concern = req.country in COUNTRIES_OF_CONCERN or any(
            c in COUNTRIES_OF_CONCERN
            for h in screening.hits
            if h.score >= screening.threshold
            for c in (country_code(x) for x in h.entry.party.countries)
        )
        data: Any = None
        rows = suppressed = persons = 0
        dsp: dict[str, Any] = {}
        if not reasons and decision.grant is not None:
            data, rows, suppressed, persons = self._collect(req, decision.grant, principal, dsp)
        if category is not None and concern and not reasons:
            before = self._sent_before(req, category)
            limit = DSP_THRESHOLDS[category]
            dsp = {"dsp_category": category, "dsp_prior_12m": before, "dsp_threshold": limit}
            if before + persons > limit:
                reasons.append(
                    f"28 CFR 202.205: {category.replace('_', ' ')} of {before + persons:,} U.S."
                    f" persons toward a country of concern over 12 months (threshold {limit:,})"
                )
        allowed = not reasons
        now = int(time.time() * 1000)
        if not allowed:
            data, rows, suppressed = None, 0, 0
        entry = self.gate.log.append(
            {
                "type": "egress.flow",
                "v": 1,
                "time_ms": now,
                "by": principal.name,
                "org": principal.org,
                "recipient": req.recipient,
                "country": req.country,
                "country_of_concern": concern,
                "kind": req.kind,
                "resource": resource,
                "data_class": data_class,
                "purpose": req.purpose,
                "decision": "allow" if allowed else "refuse",
                "reasons": reasons,
                "screening_entry": s_entry,
                "access_entry": decision.entry,
                "rows": rows,
                "suppressed_groups": suppressed,
                "min_group_size": req.min_group_size if req.kind == "aggregates" else None,
                "us_persons": persons if allowed else 0,
                **dsp,
            }
        )
        with self.db.write() as conn:
            conn.execute(
                flows_t.insert().values(
                    recipient_key=query_key(req.recipient), country=req.country, kind=req.kind,
                    data_class=data_class, decision="allow" if allowed else "refuse",
                    dsp_category=category or "", us_persons=persons if allowed else 0,
                    ms=now, ledger_index=entry,
                )
            )  # fmt: skip
        return ExportResult(allowed, reasons, entry, s_entry, decision.entry, data, rows,
                            suppressed, persons, dsp)  # fmt: skip

    def _collect(
        self, req: ExportRequest, grant: Any, principal: Principal, details: dict[str, Any]
    ) -> tuple[Any, int, int, int]:
        vault = self.gate.vault
        if req.kind == "aggregates" and self.privacy is not None:
            categories, records = vault.aggregate_records(grant, by=req.by)
            release = self.privacy.release(
                principal.name, records, categories, epsilon=req.epsilon,
                min_group=req.min_group_size,
                query={"export": "aggregates", "by": req.by, "country": req.country},
            )  # fmt: skip
            details["privacy"] = release.to_dict()["privacy"]
            return release.counts, len(release.counts), release.withheld, 0
        if req.kind == "aggregates":
            counts, suppressed = vault.aggregate_table(
                grant, by=req.by, min_group=req.min_group_size
            )
            return counts, len(counts), suppressed, 0
        videos = vault.videos(grant)
        data = [
            {"id": v.id, "creator": v.creator, "topics": list(v.topics), "region": v.region,
             "language": v.language, "created_ms": v.created_ms}
            for v in videos
            if v.public
        ]  # fmt: skip
        return data, len(data), 0, len({d["creator"] for d in data})

    def summary(self) -> dict[str, Any]:
        """Every flow so far, counted by destination and data class."""
        with self.db.read_latest() as conn:
            rows = conn.execute(
                select(flows_t.c.country, flows_t.c.data_class, flows_t.c.decision, func.count())
                .group_by(flows_t.c.country, flows_t.c.data_class, flows_t.c.decision)
                .order_by(flows_t.c.country, flows_t.c.data_class, flows_t.c.decision)
            ).all()
        return {
            "flows": sum(n for *_, n in rows),
            "allowed": sum(n for _, _, d, n in rows if d == "allow"),
            "refused": sum(n for _, _, d, n in rows if d == "refuse"),
            "by_destination": [
                {"country": c, "data_class": k, "decision": d, "flows": n} for c, k, d, n in rows
            ],
        }

    def _sent_before(self, req: ExportRequest, category: str) -> int:
        since = int(time.time() * 1000) - DSP_WINDOW_MS
        with self.db.read_latest() as conn:
            n = conn.execute(
                select(func.coalesce(func.sum(flows_t.c.us_persons), 0)).where(
                    flows_t.c.recipient_key == query_key(req.recipient),
                    flows_t.c.dsp_category == category,
                    flows_t.c.decision == "allow",
                    flows_t.c.ms >= since,
                )
            ).scalar_one()
        return int(n)
