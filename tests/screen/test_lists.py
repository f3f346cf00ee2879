"""List loaders: the official formats as bundled and as an operator would load
them, versions and deltas, and malformed files refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanroom.screen.errors import ListFormatError
from cleanroom.screen.lists import (
    ListSnapshot,
    Party,
    bundled_snapshots,
    delta,
    load,
    load_csl,
    load_fcc,
    load_ofac,
    load_operator,
)

DATA = Path(__file__).parent.parent / "data"


def test_bundled_sdn_has_every_entry_with_aliases_and_programs():
    sdn = bundled_snapshots()[0]
    assert sdn.list_id == "ofac-sdn"
    assert len(sdn.parties) == 14965
    bnc = sdn.by_id()["sdn:306"]
    assert bnc.name == "BANCO NACIONAL DE CUBA"
    assert bnc.aliases == ("BNC",)
    assert bnc.programs == ("CUBA",)
    assert bnc.rule == "ofac-50"
    assert {p.kind for p in sdn.parties} >= {"entity", "individual", "vessel", "aircraft"}


def test_bundled_ns_cmic_rows_carry_linked_parents_and_no_inheritance():
    cons = bundled_snapshots()[1]
    cmic = [p for p in cons.parties if "CMIC-EO13959" in p.programs]
    assert len(cmic) == 68
    telecom = cons.by_id()["cons:30882"]
    assert telecom.linked_to == ("CHINA TELECOMMUNICATIONS CORPORATION",)
    assert "China Telecom Corp Ltd" in telecom.aliases
    assert telecom.countries == ("China",)
    assert telecom.listed_on == "03 Jun 2021"
    assert all(p.rule == "none" for p in cmic)


def test_fcc_covered_list_names_companies_and_categories():
    fcc = bundled_snapshots()[2]
    names = {p.name for p in fcc.parties if p.kind == "entity"}
    assert {
        "Huawei Technologies Company",
        "ZTE Corporation",
        "Dahua Technology Company",
        "Hytera Communications Corporation",
        "Pacific Networks Corp",
        "ComNet (USA) LLC",
    } <= names
    routers = fcc.by_id()["fcc-category:router"]
    assert routers.kind == "category" and routers.listed_on == "March 23, 2026"


def test_csl_json_and_csv_give_the_same_parties_with_their_rules():
    js = load_csl(DATA / "csl_sample.json")
    cs = load_csl(DATA / "csl_sample.csv")
    el = js.by_id()["csl:EL:e0f2a1"]
    assert el.rule == "bis-affiliates" and el.countries == ("CN",)
    assert "浙江示例光电有限公司" in el.aliases
    assert js.by_id()["csl:MEU:b77c09"].rule == "bis-affiliates"
    assert js.by_id()["csl:UVL:9911aa"].rule == "none"
    for pid in ("csl:EL:e0f2a1", "csl:MEU:b77c09"):
        a, b = js.by_id()[pid], cs.by_id()[pid]
        assert (a.name, a.aliases, a.rule, a.countries) == (b.name, b.aliases, b.rule, b.countries)


def test_operator_list_in_the_documented_format():
    snap = load_operator(
        DATA / "operator_uel.csv",
        list_id="operator:cn-uel",
        title="Unreliable Entity List",
        authority="PRC MOFCOM",
    )
    assert [p.id for p in snap.parties] == ["cn-uel:UEL-2023-01", "cn-uel:UEL-2023-02"]
    assert snap.parties[0].aliases == ("Lockheed Martin MFC",)


def test_version_is_the_content_and_delta_says_what_changed():
    a = ListSnapshot("x", "X", "A", (Party("x:1", "One"), Party("x:2", "Two")))
    b = ListSnapshot("x", "X", "A", (Party("x:2", "Two (renamed)"), Party("x:3", "Three")))
    same = ListSnapshot("x", "X", "A", (Party("x:2", "Two"), Party("x:1", "One")), "other.csv")
    assert a.version == same.version != b.version
    d = delta(a, b)
    assert (d.added, d.changed, d.removed) == (("x:3",), ("x:2",), ("x:1",))
    first = delta(None, a)
    assert first.added == ("x:1", "x:2") and not first.removed


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("ofac-sdn", '36,"AEROCARIBBEAN",-0- ,"CUBA"\n', "4 fields"),
        ("ofac-sdn", "", "no entries"),
        ("ofac-sdn", 'x,"NAME",-0- ,"P",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0-\n', "not a number"),
        ("ofac-sdn", '7,"",-0- ,"P",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0-\n', "no name"),
        ("ofac-cons", '7,"N","ship",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0-\n', "SDN_Type"),
        ("fcc", "name,date\nx,y\n", "not the FCC Covered List"),
        ("csl", '{"results": [{"name": "X"}]}', "no source list"),
        ("csl", '{"results": [', "not JSON"),
        ("csl", "name,other\nX,1\n", "'source' and 'name'"),
    ],
)
def test_malformed_list_files_are_refused_with_a_clear_error(tmp_path, fmt, content, message):
    f = tmp_path / "list.csv"
    f.write_text(content)
    with pytest.raises(ListFormatError) as e:
        load(fmt, f)
    assert message in str(e.value)


def test_operator_list_errors(tmp_path):
    f = tmp_path / "uel.csv"
    f.write_text("id,name\n1,A\n1,B\n")
    with pytest.raises(ListFormatError, match="appears twice"):
        load_operator(f, list_id="operator:x", title="X", authority="Y")
    with pytest.raises(ListFormatError, match="operator:<name>"):
        load_operator(DATA / "operator_uel.csv", list_id="uel", title="X", authority="Y")
    f.write_text("id,name,colour\n1,A,red\n")
    with pytest.raises(ListFormatError, match="unknown columns"):
        load_operator(f, list_id="operator:x", title="X", authority="Y")
    with pytest.raises(ListFormatError, match="unknown list format"):
        load("xml", f)


def test_missing_file_and_alt_file(tmp_path):
    with pytest.raises(ListFormatError, match="cannot read"):
        load_fcc(tmp_path / "nope.csv")
    prim = tmp_path / "sdn.csv"
    prim.write_text('7,"ACME TRADING",-0- ,"SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0-\n')
    alt = tmp_path / "alt.csv"
    alt.write_text('7,1,"aka","ACME TRADERS",-0-\n')
    snap = load_ofac(prim, alt=alt)
    assert snap.parties[0].aliases == ("ACME TRADERS",)
    assert json.loads(json.dumps(snap.parties[0].as_json()))["aliases"] == ["ACME TRADERS"]


def test_a_party_digest_is_its_rfc8785_encoding() -> None:
    """The standard-library encoding the digests use is byte for byte the
    ``rfc8785`` package's, on every bundled party and on any strings."""
    import rfc8785
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cleanroom.screen.lists import canonical_party_json

    for snap in bundled_snapshots():
        for party in snap.parties:
            doc = party.as_json()
            assert canonical_party_json(doc) == rfc8785.dumps(doc), party.id

    text = st.text(st.characters(blacklist_categories=["Cs"]))  # no lone surrogates

    @settings(max_examples=300, deadline=None)
    @given(text, text, st.lists(text, max_size=4))
    def same(pid: str, name: str, aliases: list[str]) -> None:
        doc = Party(pid, name, aliases=tuple(aliases)).as_json()
        assert canonical_party_json(doc) == rfc8785.dumps(doc)

    same()
