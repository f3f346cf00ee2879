"""The rules the oversight body holds the clean room to, checked on ledger
entries alone (no access to the clean room, its database or its code).

Fed the entries in order (``feed``), the engine keeps what later entries are
checked against — releases, reviews and deployments, screenings, export
decisions, deletion orders — as JSON-able state, so a monitor that stops and
resumes continues where it was. ``finish(now_ms)`` raises what only time
reveals (an overdue deletion, an export decision no flow ever declared).

Rules (each violation one alert, with the entries as evidence):

- every ``access`` entry is well formed, cites a policy version that was
  released (approved and deployed) before it, and — given the released policy
  texts — is what that policy decides for the attributes it records;
- every export that went out (``egress.flow`` allowed) has a screening of that
  recipient that came out clear and an allowed ``export`` decision; and every
  allowed export decision of aggregates or the catalogue is declared by a flow;
- the oversight body's identity is its root key's alone: the ledger's
  ``oversight.root`` is the key the monitor pins (or the first one it saw),
  and every oversight reviewer and oversight principal (``release.reviewer``,
  ``release.reviewer_removed``, ``principal.oversight``) comes with a statement
  that key signed for this log, used once; an ``access`` entry in the name of
  the oversight body is by a principal the root added;
- every review is checked here: its DSSE signature against the key the
  reviewer was registered with on the ledger, the organisation taken from that
  registration, never from the entry; a review that does not verify counts for
  nothing and is an alert;
- every deployed release was approved by the release rule (2 approvals from
  reviewers of the operator and the oversight body, at least one of the
  operator, for models, policies and source at least one of the oversight
  body, none from the parent, not by the submitter, no rejection);
- every model that trained or served ran a released ranking configuration;
- every deletion order was executed (``deletion.done``) within its deadline;
- every differentially private release (``privacy.spent``) has the noise its ε
  needs for its contribution bound, ε at most 1, and no principal spent more
  than their budget over the window (recomputed here from the entries);
- every boost a served page applied (``feed.served`` names them) was declared
  and approved by the oversight body — a review signed by an oversight
  reviewer's key about that very declaration, not by who declared it — and the page
  was served inside its window, before any revocation. (Creator boosts written
  into a ranking configuration are covered by that configuration's release.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cleanroom.ledger.authority import (
    BOOST_REVIEW_TYPE,
    REVIEW_TYPE,
    entry_digest,
    require_statement,
    root_verifier,
    verify_review,
)
from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.note import parse_verifier
from cleanroom.oversight.alerts import Alert
from cleanroom.oversight.policy import redecide

ACCESS_FIELDS = {
    "principal": str, "org": str, "role": str, "action": str, "resource": str,
    "data_class": str, "jurisdiction": str, "purpose": str, "policy_version": str,
    "decision": str, "rules": list, "obligations": list,
}  # fmt: skip
ACTIONS = ("read", "write", "export", "delete")
EGRESS_RESOURCES = ("Aggregates", "Videos")
# An allowed export decision must be declared by a flow within this many entries,
# or this many milliseconds.
DECLARE_WITHIN = 1_000
DECLARE_WITHIN_MS = 60_000
APPROVALS = 2
# Artifact kinds that need an approval of the oversight body (the release policy).
OVERSIGHT_REQUIRED = {"model": 1, "policy": 1, "source": 1}
# What a decision depends on (entries alike in these are decided once).
REDECIDE_KEY = (
    "policy_version", "principal", "kind", "org", "role", "principal_jurisdiction", "clearance",
    "self_access", "action", "resource", "data_class", "jurisdiction", "purpose", "rules",
)  # fmt: skip
# The differential privacy every researcher release must have (gate.privacy).
MAX_EPSILON = 1.0
PRIVACY_WINDOW_MS = 365 * 24 * 3600 * 1000
# Served feeds kept for the replay audit (the newest).
KEEP_SERVED = 20_000
# A page's time bucket may start this much before a boost's window (or end after it).
BOOST_SLACK_MS = 60_000
# Screenings kept for the flows that cite them (a flow follows its screening).
KEEP_SCREENINGS = 10_000


class RuleEngine:
    """The clean room's rules, checked entry by entry in log order, with the state they need
    carried between runs."""

    def __init__(
        self,
        state: dict[str, Any] | None = None,
        policies: Callable[[str], tuple[str, str]] | None = None,
        *,
        oversight_vkey: str | None = None,
        origin: str | None = None,
    ) -> None:
        """``policies`` gives the (policies, schema) text of a released policy
        version: with it every access entry is decided again under its policy.
        ``oversight_vkey`` is the oversight body's own root key (without it the
        first ``oversight.root`` on the ledger is trusted); ``origin`` the log's."""
        self.policies = policies
        self.origin = origin
        self._redecided: dict[tuple[Any, ...], bool | None] = {}
        s = state or {}
        self.submitted: dict[str, str] = s.get("submitted", {})  # artifact -> org/submitter
        self.reviews: dict[str, dict[str, list[str]]] = s.get("reviews", {})
        self.deployed: dict[str, list[str]] = s.get("deployed", {"policy": [], "model": []})
        self.screenings: dict[str, list[str]] = s.get("screenings", {})  # index -> [query, dec]
        # allowed export decisions no flow has declared yet: index -> [resource, time_ms]
        self.exports: dict[str, list[Any]] = s.get("exports", {})
        self.orders: dict[str, list[Any]] = s.get("orders", {})  # open: order -> [index, deadline]
        # flows by "country|data class|decision": what the oversight counts
        self.flows: dict[str, int] = s.get("flows", {})
        # served feeds the replay audit samples: [index, feed, list_digest, config, model]
        self.served: list[list[Any]] = s.get("served", [])
        # boost id -> {declared: index, by, org, start_ms, end_ms, status, approved: index}
        self.boosts: dict[str, dict[str, Any]] = s.get("boosts", {})
        self.boosted_pages: dict[str, int] = s.get("boosted_pages", {})  # boost id -> pages
        self.last_index: int = s.get("last_index", -1)
        self.kinds: dict[str, str] = s.get("kinds", {})  # artifact -> kind
        # the oversight root: pinned by the oversight body, else the ledger's first
        self.root: str | None = oversight_vkey or s.get("root")
        self.root_seen: bool = s.get("root_seen", False)
        self.reviewers: dict[str, list[str]] = s.get("reviewers", {})  # name -> [org, vkey]
        self.overseers: list[str] = s.get("overseers", [])  # oversight principals
        self.statements: list[str] = s.get("statements", [])  # digests of used statements
        # principal -> [[time_ms, epsilon], …] of their releases in the window
        self.spends: dict[str, list[list[float]]] = s.get("spends", {})

    def state(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "reviews": self.reviews,
            "deployed": self.deployed,
            "screenings": self.screenings,
            "exports": self.exports,
            "orders": self.orders,
            "flows": self.flows,
            "served": self.served,
            "boosts": self.boosts,
            "boosted_pages": self.boosted_pages,
            "last_index": self.last_index,
            "kinds": self.kinds,
            "root": self.root,
            "root_seen": self.root_seen,
            "reviewers": self.reviewers,
            "overseers": self.overseers,
            "statements": self.statements,
            "spends": self.spends,
        }

    # -- feeding ---------------------------------------------------------------------

    def feed(self, index: int, entry: dict[str, Any]) -> list[Alert]:
        """Check one entry (in ledger order) and remember what later ones need."""
        self.last_index = max(self.last_index, index)
        kind = entry.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        out = handler(self, index, entry) if handler else []
        return out + self._undeclared(index)

    def finish(self, now_ms: int) -> list[Alert]:
        """What only the passing of time reveals."""
        out = []
        for k, (resource, at_ms) in list(self.exports.items()):
            if now_ms - at_ms > DECLARE_WITHIN_MS:
                out.append(self._undeclared_alert(int(k), resource))
                del self.exports[k]
        for order, (index, deadline) in self.orders.items():
            if now_ms > deadline:
                out.append(
                    Alert(
                        "deletion-overdue",
                        index,
                        f"deletion order {order} (entry {index}) is past its deadline "
                        f"and has no deletion.done entry",
                        {"entries": [index], "deadline_ms": deadline, "now_ms": now_ms},
                    )
                )
        return out

    # -- rules -----------------------------------------------------------------------------

    def _access(self, index: int, e: dict[str, Any]) -> list[Alert]:
        problems = [
            f"{k} is {type(e.get(k)).__name__}, not {t.__name__}"
            for k, t in ACCESS_FIELDS.items()
            if not isinstance(e.get(k), t)
        ]
        if not problems:
            if e["decision"] not in ("allow", "deny"):
                problems.append(f"decision {e['decision']!r}")
            if e["action"] not in ACTIONS:
                problems.append(f"action {e['action']!r}")
            if "subjects" not in e and "subjects_digest" not in e:
                problems.append("no subjects")
        if problems:
            return [Alert("malformed-entry", index, f"access entry {index}: " + "; ".join(problems),
                          {"entries": [index]})]  # fmt: skip
        out = []
        if e["org"] == "oversight" and e["principal"] not in self.overseers:
            out.append(
                Alert(
                    "forged-oversight-identity",
                    index,
                    f"access entry {index} is in the name of the oversight body by "
                    f"{e['principal']!r}, whom no statement of the oversight root added",
                    {"entries": [index], "overseers": list(self.overseers)},
                )
            )
        if e["policy_version"] not in self.deployed["policy"]:
            out.append(
                Alert(
                    "policy-not-released",
                    index,
                    f"access entry {index} was decided by policy {e['policy_version']}, "
                    "which no approved release deployed",
                    {"entries": [index], "released": list(self.deployed["policy"])},
                )
            )
        elif self.policies is not None:
            out += self._redecide(index, e)
        if (
            e["action"] == "export"
            and e["decision"] == "allow"
            and e["resource"] in EGRESS_RESOURCES
        ):
            self.exports[str(index)] = [e["resource"], int(e.get("time_ms", 0))]
        return out

    def _redecide(self, index: int, e: dict[str, Any]) -> list[Alert]:
        key = tuple(json.dumps(e.get(k), sort_keys=True) for k in REDECIDE_KEY)
        if key not in self._redecided:
            assert self.policies is not None
            policies, schema = self.policies(e["policy_version"])
            self._redecided[key] = redecide(e, policies, schema)
        allowed = self._redecided[key]
        if allowed is None or allowed == (e["decision"] == "allow"):
            return []
        return [
            Alert(
                "decision-contradicts-policy",
                index,
                f"access entry {index} says {e['decision']} for {e['principal']} "
                f"({e['org']}/{e['role']}) to {e['action']} {e['resource']}, but policy "
                f"{e['policy_version']} would {'allow' if allowed else 'deny'} it",
                {"entries": [index]},
            )
        ]

    def _flow(self, index: int, e: dict[str, Any]) -> list[Alert]:
        # the decision is declared, whatever came of the flow
        decision = self.exports.pop(str(e.get("access_entry")), None)
        key = f"{e.get('country')}|{e.get('data_class')}|{e.get('decision')}"
        self.flows[key] = self.flows.get(key, 0) + 1
        if e.get("decision") != "allow":
            return []
        out = []
        s = self.screenings.get(str(e.get("screening_entry")))
        if s is None or s[0] != e.get("recipient") or s[1] != "clear":
            why = (
                "no screening entry"
                if s is None
                else f"the screening of {s[0]!r} came out {s[1]!r}"
            )
            out.append(
                Alert(
                    "export-without-screening",
                    index,
                    f"export {index} to {e.get('recipient')!r} went out with {why}",
                    {"entries": [index] + ([int(e["screening_entry"])] if s else [])},
                )
            )
        if decision is None:
            out.append(
                Alert(
                    "export-without-approval",
                    index,
                    f"export {index} to {e.get('recipient')!r} cites no allowed export decision "
                    f"(access entry {e.get('access_entry')})",
                    {"entries": [index]},
                )
            )
        return out

    def _screening(self, index: int, e: dict[str, Any]) -> list[Alert]:
        self.screenings[str(index)] = [str(e.get("query")), str(e.get("decision"))]
        if len(self.screenings) > KEEP_SCREENINGS:
            del self.screenings[next(iter(self.screenings))]
        return []

    def _undeclared(self, index: int) -> list[Alert]:
        """Export decisions still undeclared this many entries later (oldest first)."""
        out = []
        for k in list(self.exports):
            if index - int(k) <= DECLARE_WITHIN:
                break
            out.append(self._undeclared_alert(int(k), self.exports.pop(k)[0]))
        return out

    @staticmethod
    def _undeclared_alert(index: int, resource: str) -> Alert:
        return Alert(
            "undeclared-export",
            index,
            f"access entry {index} allowed an export of {resource} that no egress.flow declares",
            {"entries": [index]},
        )

    def _submitted(self, index: int, e: dict[str, Any]) -> list[Alert]:
        self.submitted[str(e.get("artifact"))] = f"{e.get('org')}/{e.get('submitted_by')}"
        self.kinds[str(e.get("artifact"))] = str(e.get("kind"))
        return []

    def _review(self, index: int, e: dict[str, Any]) -> list[Alert]:
        """A release review counts only if its signature verifies with the key
        its reviewer was registered with; the organisation is the registration's."""
        art, name = str(e.get("artifact")), str(e.get("reviewer"))
        reg = self.reviewers.get(name)
        try:
            if reg is None:
                raise LedgerError(f"{name!r} is not a reviewer registered on the ledger")
            pred = verify_review(
                e.get("envelope"), parse_verifier(reg[1]), predicate_type=REVIEW_TYPE, subject=art
            )
            if pred["decision"] != e.get("decision"):
                raise LedgerError(f"the entry says {e.get('decision')}, the signed review "
                                  f"{pred['decision']}")  # fmt: skip
        except LedgerError as err:
            return [Alert("forged-review", index,
                          f"review {index} of {art} by {name!r} does not count: {err.message}",
                          {"entries": [index]})]  # fmt: skip
        self.reviews.setdefault(art, {}).setdefault(name, [reg[0], pred["decision"]])
        return []

    # -- the oversight body's identity ---------------------------------------------------

    def _root(self, index: int, e: dict[str, Any]) -> list[Alert]:
        vkey = str(e.get("vkey"))
        if self.root is None:
            self.root = vkey
        if vkey == self.root:
            self.root_seen = True
            return []
        why = "another root key" if self.root_seen else "not the root key the oversight body pins"
        return [Alert("oversight-root-changed", index,
                      f"entry {index} names {vkey!r} as the oversight root key: {why}",
                      {"entries": [index], "pinned": self.root})]  # fmt: skip

    def _statement_problem(
        self, e: dict[str, Any], action: str, subject: str, name: str, **want: Any
    ) -> str:
        """Why the root statement an entry carries does not authorise
        ``action subject name`` ("" when it does; the statement is then used)."""
        try:
            st = require_statement(
                e.get("statement"), root_verifier(self.root) if self.root else None,
                origin=self.origin, action=action, subject=subject, name=name, what=name,
                **want,
            )  # fmt: skip
        except LedgerError as err:
            return err.message
        if st.digest in self.statements:
            return "the statement was used before"
        self.statements.append(st.digest)
        return ""

    def _forged_identity(self, index: int, what: str, why: str) -> list[Alert]:
        return [Alert("forged-oversight-identity", index, f"entry {index}: {what}: {why}",
                      {"entries": [index]})]  # fmt: skip

    def _reviewer(self, index: int, e: dict[str, Any]) -> list[Alert]:
        name, org, vkey = str(e.get("reviewer")), str(e.get("org")), str(e.get("vkey"))
        if org == "oversight":
            why = self._statement_problem(e, "add", "reviewer", name, vkey=vkey)
            if why:
                return self._forged_identity(index, f"oversight reviewer {name!r}", why)
        elif org != "operator":
            return self._forged_identity(index, f"reviewer {name!r} of {org!r}", "may not review")
        self.reviewers.setdefault(name, [org, vkey])
        return []

    def _reviewer_removed(self, index: int, e: dict[str, Any]) -> list[Alert]:
        name = str(e.get("reviewer"))
        reg = self.reviewers.get(name)
        if reg is not None and reg[0] == "oversight":
            why = self._statement_problem(e, "remove", "reviewer", name)
            if why:
                return self._forged_identity(index, f"removal of oversight reviewer {name!r}", why)
        self.reviewers.pop(name, None)
        return []

    def _overseer(self, index: int, e: dict[str, Any]) -> list[Alert]:
        name, action = str(e.get("principal")), str(e.get("action"))
        want = {k: e.get(k) for k in ("kind", "role", "jurisdiction")} if action == "add" else {}
        why = self._statement_problem(e, action, "principal", name, **want)
        if why:
            return self._forged_identity(index, f"oversight principal {name!r}", why)
        if action == "add" and name not in self.overseers:
            self.overseers.append(name)
        elif action == "remove" and name in self.overseers:
            self.overseers.remove(name)
        return []

    def _tokens_revoked(self, index: int, e: dict[str, Any]) -> list[Alert]:
        """The operator cut off an oversight principal's access to the API (by
        the monitor's own list of who the root added, not the entry's word)."""
        name = str(e.get("principal"))
        if name not in self.overseers and e.get("org") != "oversight":
            return []
        tokens = e.get("tokens") if isinstance(e.get("tokens"), list) else []
        return [
            Alert(
                "oversight-access-revoked",
                index,
                f"entry {index}: {e.get('by')!r} revoked {len(tokens)} API token(s) of the "
                f"oversight body's {name!r} ({str(e.get('reason'))[:200]!r})",
                {"entries": [index], "principal": name, "by": e.get("by")},
            )
        ]

    def _deployed(self, index: int, e: dict[str, Any]) -> list[Alert]:
        art, kind = str(e.get("artifact")), str(e.get("kind"))
        missing = self._approval_missing(art)
        if missing:
            return [
                Alert(
                    "unapproved-release",
                    index,
                    f"{kind} {art} was deployed (entry {index}) without approval: {missing}",
                    {"entries": [index], "reviews": self.reviews.get(art, {})},
                )
            ]
        self.deployed.setdefault(kind, [])
        if art not in self.deployed[kind]:
            self.deployed[kind].append(art)
        return []

    def _approval_missing(self, art: str) -> str:
        submitter = self.submitted.get(art)
        if submitter is None:
            return "never submitted"
        reviews = self.reviews.get(art, {})
        if any(d != "approve" for _, d in reviews.values()):
            return "a reviewer rejected it"
        counted = [
            (r, org)
            for r, (org, _) in reviews.items()
            if org in ("operator", "oversight") and r != submitter.split("/", 1)[1]
        ]
        if len(counted) < APPROVALS:
            return f"{len(counted)} counted approvals of {APPROVALS}"
        if not any(org == "operator" for _, org in counted):
            return "no approval from the operator"
        need = OVERSIGHT_REQUIRED.get(self.kinds.get(art, ""), 0)
        if sum(org == "oversight" for _, org in counted) < need:
            return "no approval from the oversight body"
        return ""

    def _boost(self, index: int, e: dict[str, Any]) -> list[Alert]:
        kind = str(e.get("type")).removeprefix("boost.")
        bid = str(e.get("boost"))
        if kind == "declared":
            self.boosts[bid] = {
                "declared": index, "video": e.get("video"), "by": e.get("declared_by"),
                "org": e.get("org"), "start_ms": int(e.get("start_ms", 0)),
                "end_ms": int(e.get("end_ms", 0)), "status": "declared",
                "digest": entry_digest(e),
            }  # fmt: skip
            return []
        b = self.boosts.get(bid)
        if kind == "approved":
            why = _boost_approval_problem(b, e, self.reviewers)
            if why:
                ev = [index] + ([b["declared"]] if b else [])
                return [Alert("unapproved-boost", index,
                              f"boost {bid} approved at entry {index} does not count: {why}",
                              {"entries": ev})]  # fmt: skip
            b["status"], b["approved"] = "approved", index
        elif b is not None and kind in ("rejected", "revoked"):
            b["status"] = kind
            if kind == "revoked":
                b["end_ms"] = min(b["end_ms"], int(e.get("time_ms", b["end_ms"])))
        return []

    def _served_boosts(self, index: int, e: dict[str, Any]) -> list[Alert]:
        bad = []
        at = int(e.get("time_bucket_ms", 0))
        for bid in e.get("boosts") or []:
            if str(bid).startswith("creator:"):
                continue  # part of the ranking configuration (a released artifact)
            self.boosted_pages[bid] = self.boosted_pages.get(bid, 0) + 1
            b = self.boosts.get(bid)
            if b is None or "approved" not in b:
                bad.append(f"{bid} was never {'declared' if b is None else 'approved'}")
            elif not (b["start_ms"] - BOOST_SLACK_MS <= at < b["end_ms"] + BOOST_SLACK_MS):
                bad.append(f"{bid} applied outside its window (or after its revocation)")
        if not bad:
            return []
        ev = [index] + [self.boosts[b]["declared"] for b in e["boosts"] if b in self.boosts]
        return [Alert("undeclared-boost", index,
                      f"feed page {index} applied boosts without approval: " + "; ".join(bad),
                      {"entries": ev})]  # fmt: skip

    def _model(self, index: int, e: dict[str, Any]) -> list[Alert]:
        out = self._served_boosts(index, e) if e.get("type") == "feed.served" else []
        return out + self._config(index, e)

    def _config(self, index: int, e: dict[str, Any]) -> list[Alert]:
        config = e.get("ranking_config")
        if e.get("type") == "feed.served" and e.get("offset") == 0:
            self.served.append(
                [index, e.get("feed"), e.get("list_digest"), config, e.get("model_version")]
            )
            del self.served[:-KEEP_SERVED]
        if config in self.deployed.get("model", []):
            return []
        what = "served a feed" if e.get("type") == "feed.served" else "was trained"
        return [
            Alert(
                "unapproved-model",
                index,
                f"a model with ranking configuration {config} {what} (entry {index}); "
                "no approved release deployed that configuration",
                {"entries": [index], "released": list(self.deployed.get("model", []))},
            )
        ]

    def _privacy(self, index: int, e: dict[str, Any]) -> list[Alert]:
        """A DP release: enough noise for its ε, and within the principal's budget."""
        who, at = str(e.get("principal")), int(e.get("time_ms", 0))
        eps, scale = float(e.get("epsilon", 0)), float(e.get("scale", 0))
        bound, budget = float(e.get("contribution_bound", 0)), float(e.get("budget", 0))
        spent = [x for x in self.spends.get(who, []) if x[0] > at - PRIVACY_WINDOW_MS]
        spent.append([at, eps])
        self.spends[who] = spent
        total = sum(x[1] for x in spent)
        why = []
        if not 0 < eps <= MAX_EPSILON:
            why.append(f"ε {eps:g} is outside (0, {MAX_EPSILON:g}]")
        if eps <= 0 or bound < 1 or scale + 1e-9 < bound / eps:
            why.append(f"noise scale {scale:g} is less than its bound {bound:g} / ε {eps:g}")
        if total > budget + 1e-9:
            why.append(f"{who} spent ε {total:g} in the window, over the budget {budget:g}")
        if not why:
            return []
        return [Alert("privacy-violation", index,
                      f"privacy release {index} for {who}: " + "; ".join(why),
                      {"entries": [index], "spent": total})]  # fmt: skip

    def _order(self, index: int, e: dict[str, Any]) -> list[Alert]:
        self.orders[str(e.get("order"))] = [index, int(e.get("deadline_ms", 0))]
        return []

    def _done(self, index: int, e: dict[str, Any]) -> list[Alert]:
        order = self.orders.pop(str(e.get("order")), None)
        if order is None:
            return []
        done_ms = int(e.get("time_ms", 0))
        if done_ms > order[1]:
            return [
                Alert(
                    "deletion-late",
                    index,
                    f"deletion order {e.get('order')} was executed after its deadline "
                    f"(entry {index})",
                    {"entries": [order[0], index], "deadline_ms": order[1], "done_ms": done_ms},
                )
            ]
        return []


def _boost_approval_problem(
    b: dict[str, Any] | None, e: dict[str, Any], reviewers: dict[str, list[str]]
) -> str:
    """Why a ``boost.approved`` entry does not count ("" when it does): it must
    carry a review of that declaration signed by a reviewer the oversight root
    registered (whatever the entry says of its author's organisation)."""
    if b is None:
        return "it was never declared"
    name = str(e.get("reviewer"))
    reg = reviewers.get(name)
    if reg is None or reg[0] != "oversight":
        return f"no reviewer of the oversight body signed it ({name!r} is not one)"
    if "digest" not in b:
        return "its declaration was verified before signed approvals (no digest kept)"
    try:
        pred = verify_review(e.get("envelope"), parse_verifier(reg[1]),
                             predicate_type=BOOST_REVIEW_TYPE, subject=b["digest"])  # fmt: skip
    except LedgerError as err:
        return f"the signed review does not verify ({err.message})"
    if pred.get("decision") != "approve":
        return f"the signed review says {pred.get('decision')}"
    if e.get("by") == b["by"] or name == b["by"]:
        return "approved by who declared it"
    if b["status"] != "declared":
        return f"it was {b['status']}, not waiting for review"
    return ""


_HANDLERS = {
    "access": RuleEngine._access,
    "egress.flow": RuleEngine._flow,
    "screen.screening": RuleEngine._screening,
    "release.submitted": RuleEngine._submitted,
    "release.review": RuleEngine._review,
    "release.deployed": RuleEngine._deployed,
    "feed.served": RuleEngine._model,
    "model.trained": RuleEngine._model,
    "deletion.order": RuleEngine._order,
    "deletion.done": RuleEngine._done,
    "boost.declared": RuleEngine._boost,
    "boost.approved": RuleEngine._boost,
    "boost.rejected": RuleEngine._boost,
    "boost.revoked": RuleEngine._boost,
    "oversight.root": RuleEngine._root,
    "release.reviewer": RuleEngine._reviewer,
    "release.reviewer_removed": RuleEngine._reviewer_removed,
    "principal.oversight": RuleEngine._overseer,
    "principal.tokens_revoked": RuleEngine._tokens_revoked,
    "privacy.spent": RuleEngine._privacy,
}
