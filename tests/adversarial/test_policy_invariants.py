"""Finding 8: the shipped policy set's invariants hold for every request the
gate can make (exhaustive enumeration over the schema's finite domains), a
user principal placed in the operator's org gets no operator power, and a
policy release that breaks an invariant is shown as broken to reviewers."""

from __future__ import annotations

import pytest

from cleanroom.gate import Principal
from cleanroom.gate.analysis import analyse, summary
from cleanroom.gate.policy import load_files, shipped
from cleanroom.gate.principals import PrincipalError, Principals
from cleanroom.storage import Database


def test_the_shipped_policy_set_keeps_every_invariant() -> None:
    findings = analyse(shipped())
    assert [f.id for f in findings if not f.holds] == [], summary(findings)
    assert sum(f.checked for f in findings) > 50_000


def test_a_policy_that_lets_users_act_as_staff_is_shown_broken() -> None:
    """The class of the finding (rules testing org, not kind): a permit for
    the operator's org that forgets the kind, without the shipped forbid."""
    files = dict(shipped().files)
    cedar = next(n for n in files if n.endswith(".cedar"))
    text = (
        files[cedar]
        .replace('@id("users-are-only-users")', '@id("gone")')
        .replace(
            'when { (principal.kind == "user") != (principal.org == "users") };', "when { false };"
        )
    )
    files[cedar] = text + (
        '\n@id("operator-reads-profiles")\n'
        'permit (principal, action == Action::"read", resource is Profile)\n'
        'when { principal.org == "operator" && context.purpose == "support" };\n'
    )
    only = ("users-only-their-own", "parent-never-protected")
    findings = {f.id: f for f in analyse(load_files(files), only=only)}
    broken = findings["users-only-their-own"]
    assert not broken.holds
    assert broken.counterexamples[0]["org"] == "operator"
    assert "BROKEN" in "\n".join(summary(list(findings.values())))
    assert findings["parent-never-protected"].holds


def test_a_user_principal_belongs_to_the_users_org_only(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    principals = Principals(db)
    with pytest.raises(PrincipalError, match="kind 'user' belongs to org 'users'"):
        principals.add(Principal("u-op", "user", "operator", "support", "US", 1, "u1"))
    with pytest.raises(PrincipalError, match="kind 'user'"):
        principals.add(Principal("p-us", "person", "users", "user", "US", 0))
    db.dispose()


def test_the_role_domain_falls_back_to_every_role_when_unsure() -> None:
    from cleanroom.gate.analysis import ROLES, role_domain

    shipped_roles = role_domain(shipped().text)
    assert set(shipped_roles("legal")) == {"deletion", "recommender", "other", "legal"}
    odd = role_domain('permit (principal, action, resource) when { principal.role like "r*" };')
    assert set(odd("legal")) >= set(ROLES)
