"""The gate: the one place that decides every access to protected data and
records the decision on the ledger.

``decide`` takes a principal, an action, a resource class, a purpose and the
data subjects, evaluates the Cedar policy set (or the decision cache), appends
an ``access`` entry to the ledger — allowed or denied, with salted commitments
instead of subject ids — and, when allowed, returns a sealed grant the vault
accepts for exactly that access.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cedarpy

from cleanroom.gate.policy import PolicyBundle, shipped
from cleanroom.gate.principals import Principal
from cleanroom.ledger.access import cedar_request, request_fields
from cleanroom.ledger.entries import commitment
from cleanroom.ledger.log import Log
from cleanroom.storage.errors import CleanroomError
from cleanroom.vault.grants import AccessDenied, Grant
from cleanroom.vault.store import Vault

# The data class of each resource class (what the policies reason about).
RESOURCE_CLASSES: dict[str, str] = {
    "Profile": "protected",
    "Events": "protected",
    "UserData": "protected",
    "Videos": "interoperable",
    "Aggregates": "aggregate",
    "Decisions": "metadata",
    "DeletionOrders": "metadata",
    "Ledger": "metadata",
    "Models": "metadata",
    "Feeds": "metadata",
    "Releases": "metadata",
    "Screenings": "metadata",
    "Boosts": "metadata",
    "OversightData": "metadata",
    "Tokens": "metadata",
}
ACTIONS = ("read", "write", "export", "delete")
PURPOSES = (
    "",
    "support",
    "safety",
    "legal",
    "recommendation",
    "research",
    "oversight",
    "user_request",
    "deletion_order",
    "ingest",
    "release_submit",
    "release_review",
    "release_deploy",
    "boost_declare",
    "boost_review",
)
# Denied decisions recorded per principal: a burst, then this many per second.
DENY_BURST = 300
DENY_RATE = 50.0
# Above this many subjects an entry carries a digest of their commitments, not the list.
MAX_LISTED_SUBJECTS = 256
CACHE_LIMIT = 100_000


class BadRequest(CleanroomError):
    """A request the gate cannot decide as given."""

    status = 400
    title = "Bad request"


class RateLimited(CleanroomError):
    """A principal refused too often in a short time: its requests wait."""

    status = 429
    title = "Too many refused requests"


class DenialLimiter:
    """A token bucket per principal for denied decisions (thread-safe)."""

    def __init__(
        self, burst: int, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.rate, self.clock = burst, rate, clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, at, skipped, since_ms]
        self._lock = threading.Lock()

    def take(self, name: str) -> tuple[bool, int, int]:
        """(allowed, denials skipped before this one, since when in ms)."""
        now = self.clock()
        with self._lock:
            b = self._buckets.setdefault(name, [float(self.burst), now, 0, 0])
            b[0] = min(float(self.burst), b[0] + (now - b[1]) * self.rate)
            b[1] = now
            if b[0] < 1.0:
                if b[2] == 0:
                    b[3] = int(time.time() * 1000)
                b[2] += 1
                return False, 0, 0
            b[0] -= 1.0
            skipped, since = int(b[2]), int(b[3])
            b[2] = 0
            if len(self._buckets) > 100_000:  # forget idle principals
                self._buckets = {name: b}
            return True, skipped, since


@dataclass(frozen=True)
class Verdict:
    """What the policies say (cached): allowed, deciding rules, obligations."""

    allowed: bool
    rules: tuple[str, ...]
    obligations: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """A decision of the gate: who, what, on which records, allowed or not, and its ledger
    index."""

    allowed: bool
    principal: str
    action: str
    resource: str
    purpose: str
    rules: tuple[str, ...]
    obligations: tuple[str, ...]
    policy_version: str
    entry: int  # ledger index of this decision
    cached: bool
    grant: Grant | None

    def problem_message(self) -> str:
        why = ", ".join(self.rules) if self.rules else "no rule allows it"
        return (
            f"{self.principal} may not {self.action} {self.resource}"
            f"{' for ' + self.purpose if self.purpose else ''} ({why}; decision {self.entry})"
        )


class Gate:
    """Decides, records, and grants. One per process, wired to one vault."""

    def __init__(
        self,
        vault: Vault,
        log: Log,
        policy: PolicyBundle | None = None,
        *,
        denials: DenialLimiter | None = None,
    ) -> None:
        self.vault = vault
        self.log = log
        # Denied decisions are recorded at most this fast per principal (a token
        # bucket): a caller hammering refused requests cannot grow the ledger
        # at request rate. Beyond it: 429, and one ``access.limited`` entry
        # counts what was refused unrecorded once the caller slows down.
        self.denials = denials or DenialLimiter(DENY_BURST, DENY_RATE)
        self.limited = 0  # denied requests answered 429 without an entry of their own
        self.jurisdiction = vault.site.jurisdiction
        self._authority = vault.authority()
        self._policy = policy or shipped()
        self._cache: dict[tuple[Any, ...], Verdict] = {}
        self._lock = threading.Lock()
        self.decisions = 0  # decisions made by this gate (each is one ledger entry)

    # -- policy ----------------------------------------------------------------

    @property
    def policy(self) -> PolicyBundle:
        return self._policy

    def set_policy(self, bundle: PolicyBundle) -> None:
        """Switch to another (validated) policy set; the cache starts empty."""
        with self._lock:
            self._policy = bundle
            self._cache = {}

    def invalidate(self) -> None:
        """Forget cached verdicts (a principal or policy changed)."""
        with self._lock:
            self._cache = {}

    # -- deciding ----------------------------------------------------------------

    def evaluate(
        self,
        principal: Principal,
        action: str,
        resource: str,
        *,
        purpose: str = "",
        jurisdiction: str | None = None,
        self_access: bool = False,
    ) -> tuple[Verdict, bool]:
        """The policies' verdict and whether it came from the cache (no record)."""
        if action not in ACTIONS:
            raise BadRequest(f"unknown action {action!r}")
        if resource not in RESOURCE_CLASSES:
            raise BadRequest(f"unknown resource class {resource!r}")
        if purpose not in PURPOSES:
            raise BadRequest(
                f"unknown purpose {purpose!r}",
                hint=f"purposes: {', '.join(p for p in PURPOSES if p)}",
            )
        policy = self._policy
        juris = jurisdiction or self.jurisdiction
        key = (
            policy.version,
            principal.attributes(),
            action,
            resource,
            juris,
            purpose,
            self_access,
        )
        hit = self._cache.get(key)
        if hit is not None:
            return hit, True
        verdict = cedar_verdict(policy, principal, action, resource, juris, purpose, self_access)
        with self._lock:
            if policy is self._policy:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache = {}
                self._cache[key] = verdict
        return verdict, False

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        *,
        purpose: str = "",
        subjects: list[str] | None = None,
        all_subjects: bool = False,
    ) -> Decision:
        """Decide one access and record it on the ledger (allowed or denied).

        ``subjects`` are the user ids whose data the access touches;
        ``all_subjects`` means every subject of this site's jurisdiction (bulk
        reads for training, jurisdiction-wide deletion)."""
        subjects = sorted(set(subjects or ()))
        info = self.vault.subjects(subjects) if subjects else {}
        found = {s.jurisdiction or self.jurisdiction for s in info.values()}
        mixed = len(found) > 1
        juris = found.pop() if len(found) == 1 else self.jurisdiction
        self_access = principal.subject is not None and subjects == [principal.subject]
        verdict, cached = self.evaluate(
            principal,
            action,
            resource,
            purpose=purpose,
            jurisdiction=juris,
            self_access=self_access,
        )
        if mixed:  # subjects of several jurisdictions in one request
            verdict = Verdict(False, ("one-jurisdiction-per-request",), ())
        commitments = sorted(commitment(s.salt, uid) for uid, s in info.items())
        entry: dict[str, Any] = {
            "type": "access",
            "v": 1,
            "time_ms": int(time.time() * 1000),
            **request_fields(
                principal,
                action,
                resource,
                RESOURCE_CLASSES[resource],
                juris,
                purpose,
                self_access,
            ),
            "policy_version": self._policy.version,
            "decision": "allow" if verdict.allowed else "deny",
            "rules": list(verdict.rules),
            "obligations": list(verdict.obligations),
        }
        if all_subjects:
            entry["subjects"] = "all"
        elif len(commitments) <= MAX_LISTED_SUBJECTS:
            entry["subjects"] = commitments
        else:
            entry["subjects_digest"] = (
                "sha256:" + hashlib.sha256("\n".join(commitments).encode()).hexdigest()
            )
            entry["subjects_count"] = len(commitments)
        if not verdict.allowed:
            self._limit(principal)
        index = self.log.append(entry)
        with self._lock:
            self.decisions += 1
        grant = None
        if verdict.allowed:
            grant = self._authority.issue(
                principal=principal.name,
                action=action,
                resource=resource,
                purpose=purpose,
                jurisdiction=juris,
                subjects=None if all_subjects else frozenset(subjects),
                obligations=verdict.obligations,
                decision=index,
            )
        return Decision(
            verdict.allowed,
            principal.name,
            action,
            resource,
            purpose,
            verdict.rules,
            verdict.obligations,
            self._policy.version,
            index,
            cached,
            grant,
        )

    def _limit(self, principal: Principal) -> None:
        """Count a denial against the principal's bucket: 429 when it is empty;
        otherwise first record how many went unrecorded since the last one."""
        ok, skipped, since_ms = self.denials.take(principal.name)
        if not ok:
            with self._lock:
                self.limited += 1
            raise RateLimited(
                f"{principal.name} is refused too often: denied requests are answered 429 "
                f"until they slow down (at most {self.denials.rate:g}/s are recorded)",
                hint="stop retrying a refused request; the refusals are counted on the ledger",
            )
        if skipped:
            self.log.append(
                {
                    "type": "access.limited",
                    "v": 1,
                    "time_ms": int(time.time() * 1000),
                    "principal": principal.name,
                    "org": principal.org,
                    "refused_unrecorded": skipped,
                    "since_ms": since_ms,
                    "policy_version": self._policy.version,
                }
            )

    def require(self, principal: Principal, action: str, resource: str, **how: Any) -> Grant:
        """:meth:`decide` (same keywords) and return the grant, or raise
        :class:`AccessDenied` (403) naming the rules and the decision's index."""
        d = self.decide(principal, action, resource, **how)
        if d.grant is None:
            raise AccessDenied(d.problem_message(), rules=d.rules, ledger_index=d.entry)
        return d.grant

    def check_ledger_write(self, principal: Principal) -> None:
        """Authorize an append to the ledger. Not recorded as a separate decision:
        the appended entry is its own record (and recording it would append again)."""
        verdict, _ = self.evaluate(principal, "write", "Ledger")
        if not verdict.allowed:
            raise AccessDenied(
                f"{principal.name} may not write to the ledger ({', '.join(verdict.rules)})"
            )

    # -- internals ---------------------------------------------------------------


def _cedar_request(
    principal: Principal,
    action: str,
    resource: str,
    jurisdiction: str,
    purpose: str,
    self_access: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    fields = request_fields(
        principal, action, resource, RESOURCE_CLASSES[resource], jurisdiction, purpose, self_access
    )
    return cedar_request(fields)


def _verdict(policy: PolicyBundle, result: Any) -> Verdict:
    if result.diagnostics.errors:
        # The request does not fit the schema (e.g. export of a Profile) or a
        # rule failed to evaluate: deny (fail closed) and say so.
        return Verdict(False, ("request-outside-schema",), ())
    rules = tuple(sorted(policy.rule_ids.get(r, r) for r in result.diagnostics.reasons))
    if not result.allowed:
        return Verdict(False, rules or ("default-deny",), ())
    obligations = sorted({o for r in rules for o in policy.obligations.get(r, ())})
    return Verdict(True, rules, tuple(obligations))


def cedar_verdict(
    policy: PolicyBundle,
    principal: Principal,
    action: str,
    resource: str,
    jurisdiction: str,
    purpose: str,
    self_access: bool,
) -> Verdict:
    """What ``policy`` says about one request (no cache, no record)."""
    request, entities = _cedar_request(
        principal, action, resource, jurisdiction, purpose, self_access
    )
    return _verdict(
        policy, cedarpy.is_authorized(request, policy.policies, entities, policy.schema)
    )


# The fixed set of requests a policy change is judged on: one principal per
# kind of party the clean room knows, every action, resource class and purpose,
# at home and abroad, as the data subject or not.
ARCHETYPES = (
    Principal("platform-service", "service", "platform", "ingest", "US", 1),
    Principal("operator-support", "person", "operator", "support", "US", 1),
    Principal("operator-safety", "person", "operator", "safety", "US", 1),
    Principal("operator-legal", "person", "operator", "legal", "US", 1),
    Principal("operator-engineer", "person", "operator", "engineer", "US", 1),
    Principal("operator-recommender", "service", "operator", "recommender", "US", 1),
    Principal("operator-ledger", "service", "operator", "ledger", "US", 1),
    Principal("parent-engineer", "person", "parent", "engineer", "US", 9),
    Principal("parent-service", "service", "parent", "recommender", "US", 9),
    Principal("oversight-regulator", "person", "oversight", "regulator", "US", 5),
    Principal("researcher", "person", "researcher", "scientist", "US", 1),
    Principal("user", "user", "users", "user", "US", 0, subject="u1"),
    Principal("operator-abroad", "person", "operator", "support", "DE", 1),
)


def decision_changes(
    old: PolicyBundle, new: PolicyBundle, *, home: str = "US"
) -> list[dict[str, Any]]:
    """Every request of the fixed set whose decision differs between two
    policy sets (what a reviewer of a policy release reads beside the diff)."""
    requests = []
    keys = []
    for p in ARCHETYPES:
        for action in ACTIONS:
            for resource in RESOURCE_CLASSES:
                for purpose in PURPOSES:
                    for self_access in (False, True) if p.kind == "user" else (False,):
                        keys.append((p, action, resource, purpose, self_access))
                        requests.append(
                            _cedar_request(p, action, resource, home, purpose, self_access)
                        )
    # one entity set for the whole batch: every archetype and every resource
    entities: dict[str, dict[str, Any]] = {}
    for _, ents in requests:
        for e in ents:
            entities[f"{e['uid']['type']}/{e['uid']['id']}"] = e
    out = []
    verdicts = []
    for bundle in (old, new):
        results = cedarpy.is_authorized_batch(
            [r for r, _ in requests], bundle.policies, list(entities.values()), bundle.schema
        )
        verdicts.append([_verdict(bundle, x) for x in results])
    for k, a, b in zip(keys, verdicts[0], verdicts[1], strict=True):
        if a.allowed != b.allowed:
            p, action, resource, purpose, self_access = k
            out.append(
                {
                    "principal": f"{p.org}/{p.kind}/{p.role}",
                    "action": action,
                    "resource": resource,
                    "purpose": purpose,
                    "self_access": self_access,
                    "before": "allow" if a.allowed else "deny",
                    "after": "allow" if b.allowed else "deny",
                    "rules_after": list(b.rules),
                }
            )
    return out
