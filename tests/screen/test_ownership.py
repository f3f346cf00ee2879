"""Ownership rules with OFAC's own examples (FAQs 398-401), NS-CMIC without
inheritance, and the BIS Affiliates Rule from its effective date."""

from __future__ import annotations

import datetime as dt

import pytest

from cleanroom.screen.errors import ListFormatError
from cleanroom.screen.ownership import Listing, OwnershipGraph, Stake, parse_stakes

SDN = Listing("ofac-sdn", "sdn:1", "ofac-50", "X")
SDN_Y = Listing("ofac-sdn", "sdn:2", "ofac-50", "Y")
CMIC = Listing("ofac-cons", "cons:9", "none", "CMIC Parent")
EL = Listing("csl", "csl:EL:1", "bis-affiliates", "Listed Co")
EL2 = Listing("csl", "csl:MEU:2", "bis-affiliates", "Listed Institute")


def graph(*stakes: tuple[str, str, float]) -> OwnershipGraph:
    return OwnershipGraph(Stake(o, t, p) for o, t, p in stakes)


def ofac(g: OwnershipGraph, listings: dict[str, Listing]) -> dict[str, object]:
    covered = g.covered({k.lower(): [v] for k, v in listings.items()})
    return {n: c for n, cs in covered.items() for c in cs if c.rule == "ofac-50"}


def test_faq_401_example_1_chain_of_50_percent_stakes():
    g = graph(("X", "A", 50), ("A", "B", 50))
    blocked = ofac(g, {"X": SDN})
    assert {"a", "b"} <= set(blocked)
    assert blocked["b"].owners == [("a", 50)]
    assert blocked["b"].chain(blocked, g.names) == "B <- 50% A <- 50% X (ofac-sdn sdn:1)"


def test_faq_401_example_2_indirect_stakes_through_two_blocked_entities_add_up():
    g = graph(("X", "A", 50), ("X", "B", 50), ("A", "C", 25), ("B", "C", 25))
    blocked = ofac(g, {"X": SDN})
    assert "c" in blocked and blocked["c"].total == 50
    path = blocked["c"].path(blocked, g.names)
    assert [t["entity"] for t in path["through"]] == ["A", "B"]
    assert path["through"][0]["through"][0]["listed"]["party_id"] == "sdn:1"


def test_faq_401_example_3_direct_and_blocked_entity_stakes_aggregate():
    g = graph(("X", "A", 50), ("X", "B", 10), ("A", "B", 40))
    blocked = ofac(g, {"X": SDN})
    assert "b" in blocked and sorted(blocked["b"].owners) == [("a", 40), ("x", 10)]


def test_faq_399_stakes_of_different_blocked_persons_are_aggregated():
    blocked = ofac(graph(("X", "A", 25), ("Y", "A", 25)), {"X": SDN, "Y": SDN_Y})
    assert "a" in blocked and blocked["a"].total == 50


def test_below_fifty_percent_is_not_blocked_and_control_does_not_count():
    g = graph(("X", "A", 49.99), ("Z", "A", 50.01))  # X may control A: still not blocked
    assert "a" not in ofac(g, {"X": SDN})


def test_a_stake_through_an_entity_that_is_not_blocked_does_not_count():
    # X owns 40% of A (A not blocked); A owns 100% of B: B is not blocked
    g = graph(("X", "A", 40), ("A", "B", 100))
    assert not {"a", "b"} & set(ofac(g, {"X": SDN}))


def test_fixed_point_terminates_on_cycles_of_ownership():
    g = graph(("X", "A", 60), ("A", "B", 30), ("B", "A", 20), ("X", "B", 20))
    blocked = ofac(g, {"X": SDN})
    assert {"a", "b"} <= set(blocked)  # B: 30 (A, blocked) + 20 (X) = 50


def test_ns_cmic_listing_is_not_inherited_by_what_it_owns():
    g = graph(("CMIC Parent", "Subsidiary", 100))
    covered = g.covered({"cmic parent": [CMIC]})
    assert "subsidiary" not in covered
    assert covered["cmic parent"][0].listing == CMIC


def test_bis_affiliates_rule_applies_from_its_effective_date_only():
    g = graph(("Listed Co", "Affiliate", 30), ("Listed Institute", "Affiliate", 20))
    listings = {"listed co": [EL], "listed institute": [EL2]}
    start = dt.date(2026, 11, 10)
    before = g.covered(listings, as_of=dt.date(2026, 1, 1), affiliates_from=start)
    after = g.covered(listings, as_of=dt.date(2026, 11, 29), affiliates_from=start)
    never = g.covered(listings, as_of=dt.date(2026, 11, 29), affiliates_from=None)
    assert "affiliate" not in before and "affiliate" not in never
    assert [c.rule for c in after["affiliate"]] == ["bis-affiliates"]
    assert after["affiliate"][0].total == 50


def test_rules_do_not_mix_ofac_and_bis_stakes():
    g = graph(("X", "Mixed", 25), ("Listed Co", "Mixed", 25))
    covered = g.covered(
        {"x": [SDN], "listed co": [EL]},
        as_of=dt.date(2026, 12, 1),
        affiliates_from=dt.date(2026, 11, 10),
    )
    assert "mixed" not in covered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("owner,owned\nX,A\n", "columns owner, owned, percent"),
        ("owner,owned,percent\nX,A,lots\n", "not a number"),
        ("owner,owned,percent\nX,A,0\n", "more than 0"),
        ("owner,owned,percent\nX,A,60\nY,A,60\n", "more than 100"),
        ("owner,owned,percent\nX,X,60\n", "cannot own itself"),
        ("owner,owned,percent\n,A,60\n", "names its owner"),
    ],
)
def test_bad_ownership_files(text, message):
    with pytest.raises(ListFormatError, match=message):
        parse_stakes(text)
