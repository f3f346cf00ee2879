"""The policy set's invariants, proved by exhaustive enumeration.

Cedar decides on a principal's kind, org, role, jurisdiction and clearance, an
action, a resource class (with its data class and jurisdiction), the purpose
and whether the principal is the only data subject. Every one of these has a
finite domain once values the policy never names are folded into one
representative: a policy compares a role only with purposes and the literals
``recommender`` and ``deletion``, a clearance only with ``1``, a jurisdiction
only with the resource's — so ``other`` stands for every other role, ``0``,
``1`` and ``9`` for every clearance, and ``home``/``abroad`` for every pair of
jurisdictions. Over those domains each invariant is checked request by
request with cedarpy (the engine the gate runs), so "holds" means for every
request the gate can make, not for a sample.

The same analysis runs on every policy release a reviewer reads
(``release diff``): a change that breaks an invariant is shown as such.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from cleanroom.gate.gate import ACTIONS, PURPOSES, RESOURCE_CLASSES
from cleanroom.gate.policy import PolicyBundle
from cleanroom.gate.principals import KINDS, ORGS
from cleanroom.ledger.access import principal_entity, request_fields, request_of, resource_entity

HOME, ABROAD = "US", "ZZ"
ROLES = (*tuple(p for p in PURPOSES if p), "recommender", "deletion", "other")
CLEARANCES = (0, 1, 9)
PROTECTED = tuple(r for r, c in RESOURCE_CLASSES.items() if c == "protected")
# which resources each action applies to (the schema's appliesTo)
APPLIES = {
    "read": tuple(RESOURCE_CLASSES),
    "write": tuple(RESOURCE_CLASSES),
    "export": ("UserData", "Aggregates", "Videos"),
    "delete": ("UserData",),
}


@dataclass(frozen=True)
class Request:
    """One request of the domain the analysis enumerates."""

    kind: str
    org: str
    role: str
    jurisdiction: str
    clearance: int
    action: str
    resource: str
    purpose: str
    self_access: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def name(self) -> str:
        """The principal's id in the Cedar request: one per distinct principal."""
        return f"{self.kind}|{self.org}|{self.role}|{self.jurisdiction}|{self.clearance}"


@dataclass(frozen=True)
class Invariant:
    """A property every policy set must keep: the requests it is about and what must hold of
    each one allowed."""

    id: str
    text: str
    # the requests it is about, and what must hold of each when it is allowed
    requests: Callable[[Callable[[str], tuple[str, ...]]], Iterator[Request]]
    must_hold: Callable[[Request], bool] = field(default=lambda r: False)


def role_domain(policy_text: str) -> Callable[[str], tuple[str, ...]]:
    """The roles worth trying for a request of a given purpose. A policy that
    uses ``principal.role`` only as ``principal.role == "literal"`` (or ``!=``)
    or ``principal.role == context.purpose`` tells roles apart by those literals
    and by equality with the purpose, so the literals, the purpose itself and
    one other value stand for every role; any other use of the role (``like``,
    ``contains``, another attribute) falls back to every purpose and literal."""
    uses = len(re.findall(r"principal\.role\b", policy_text))
    literals = set(re.findall(r'principal\.role\s*[!=]=\s*"([^"\\]*)"', policy_text))
    literals |= set(re.findall(r'"([^"\\]*)"\s*[!=]=\s*principal\.role\b', policy_text))
    eq_purpose = len(re.findall(
        r"principal\.role\s*==\s*context\.purpose|context\.purpose\s*==\s*principal\.role",
        policy_text,
    ))  # fmt: skip
    plain = len(re.findall(r'principal\.role\s*[!=]=\s*"|"\s*[!=]=\s*principal\.role\b',
                           policy_text))  # fmt: skip
    if uses != plain + eq_purpose:
        every = tuple(sorted(set(ROLES) | literals))
        return lambda purpose: every
    base = tuple(sorted(literals | {"other"}))
    return lambda purpose: base if not purpose or purpose in base else (*base, purpose)


def _requests(
    roles: Callable[[str], tuple[str, ...]],
    *,
    kinds: tuple[str, ...] = KINDS,
    orgs: tuple[str, ...] = ORGS,
    resources: tuple[str, ...] = tuple(RESOURCE_CLASSES),
    actions: tuple[str, ...] = ACTIONS,
) -> Iterator[Request]:
    for purpose in PURPOSES:
        for kind, org, role, juris, clearance in itertools.product(
            kinds, orgs, roles(purpose), (HOME, ABROAD), CLEARANCES
        ):
            for action in actions:
                for resource in (r for r in APPLIES[action] if r in resources):
                    # only a user can be the data subject of their own request
                    for self_access in (False, True) if kind == "user" else (False,):
                        yield Request(kind, org, role, juris, clearance, action, resource,
                                      purpose, self_access)  # fmt: skip


INVARIANTS = (
    Invariant(
        "parent-never-protected",
        "a principal of the foreign parent never reads, writes, exports or deletes protected data",
        lambda roles: _requests(roles, orgs=("parent",), resources=PROTECTED),
    ),
    Invariant(
        "users-only-their-own",
        "a user principal reaches protected data only as its own data subject, and never "
        "writes it through another party's powers",
        lambda roles: _requests(roles, kinds=("user",), resources=PROTECTED),
        lambda r: r.self_access and r.org == "users" and r.action != "write",
    ),
    Invariant(
        "only-oversight-reaches-oversight-data",
        "only the oversight body reads its audit data (exposure, topics) and replays feeds",
        lambda roles: _requests(
            roles,
            orgs=tuple(o for o in ORGS if o != "oversight"),
            resources=("OversightData", "Feeds"),
        ),
    ),
    Invariant(
        "parent-never-decides",
        "the foreign parent never reviews or deploys a release, approves a boost, writes the "
        "ledger or orders a deletion",
        lambda roles: _requests(roles, orgs=("parent",), actions=("write", "delete")),
        lambda r: r.resource == "Releases" and r.purpose == "release_submit",
    ),
)


@dataclass
class Finding:
    """Whether an invariant holds, over how many requests, and counter-examples if not."""

    id: str
    text: str
    holds: bool
    checked: int
    counterexamples: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def analyse(
    bundle: PolicyBundle,
    *,
    only: tuple[str, ...] | None = None,
    limit: int = 5,
    chunk: int = 20_000,
) -> list[Finding]:
    """Each invariant of :data:`INVARIANTS` (or those named in ``only``) checked
    over its whole domain under ``bundle`` (the first ``limit`` counterexamples
    kept). About 400,000 requests in all: tens of seconds."""
    policies = bundle.text
    roles = role_domain(policies)
    out = []
    for inv in INVARIANTS:
        if only is not None and inv.id not in only:
            continue
        reqs = list(inv.requests(roles))
        bad: list[dict[str, Any]] = []
        for start in range(0, len(reqs), chunk):
            part = reqs[start : start + chunk]
            # the set was validated against ``schema`` when loaded; requests are built
            # from the schema's own domains, so they are not validated one by one
            results = cedarpy.is_authorized_batch(
                [_cedar(i, r) for i, r in enumerate(part)], policies, _entities(part)
            )
            for r, res in zip(part, results, strict=True):
                fails = bool(res.diagnostics.errors)
                if res.allowed and not fails and not inv.must_hold(r) and len(bad) < limit:
                    bad.append(r.to_dict())
        out.append(Finding(inv.id, inv.text, not bad, len(reqs), bad))
    return out


def _fields(r: Request) -> dict[str, Any]:
    """The request as the fields of an access entry (``ledger.access``)."""
    return request_fields(r, r.action, r.resource, RESOURCE_CLASSES[r.resource], HOME,
                          r.purpose, r.self_access)  # fmt: skip


def _entities(reqs: list[Request]) -> list[dict[str, Any]]:
    principals = {r.name: principal_entity(r.name, _fields(r)) for r in reqs}
    resources = [resource_entity(name, cls, HOME) for name, cls in RESOURCE_CLASSES.items()]
    return [*principals.values(), *resources]


def _cedar(i: int, r: Request) -> dict[str, Any]:
    return {**request_of(r.name, _fields(r)), "correlation_id": str(i)}


def summary(findings: list[Finding]) -> list[str]:
    """What a reviewer reads: one line per invariant, counterexamples below."""
    lines = []
    for f in findings:
        mark = "holds" if f.holds else "BROKEN"
        lines.append(f"invariant {f.id}: {mark} ({f.checked:,} requests) — {f.text}")
        for c in f.counterexamples:
            lines.append(
                f"  allowed: {c['kind']} of {c['org']} (role {c['role']}, {c['jurisdiction']}, "
                f"clearance {c['clearance']}) {c['action']} {c['resource']} for "
                f"{c['purpose'] or '(no purpose)'}{' as own data' if c['self_access'] else ''}"
            )
    return lines
