"""The matcher: China-aware normalisation, legal forms, place prefixes, rare
and generic words, explanations that add up, and properties that hold for any
names (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.screen.index import bundled_index
from cleanroom.screen.normalize import GENERIC, LEGAL, PLACE, normalize


@pytest.fixture(scope="module")
def matcher():
    return bundled_index().matcher


def test_legal_forms_are_one_class(matcher):
    names = [
        "Hytera Communications Co., Ltd.",
        "Hytera Communications Company",
        "Hytera Communications Corporation",
        "海能达通信股份有限公司",
    ]
    keys = {normalize(n).key for n in names}
    assert keys == {"hytera communications"}
    assert all(normalize(n).legal == ("company",) for n in names)
    assert LEGAL not in {t.kind for n in names for t in normalize(n).tokens}


@pytest.mark.parametrize(
    ("chinese", "english"),
    [
        ("华为技术有限公司", "Huawei Technologies Co., Ltd."),
        ("中兴通讯股份有限公司", "ZTE Corporation"),
        ("杭州海康威视数字技术股份有限公司", "Hangzhou Hikvision Digital Technology Company"),
        ("浙江大华技术股份有限公司", "Dahua Technology Company"),
        ("中国航空工业集团有限公司", "AVIC"),
        ("中国移动有限公司", "China Mobile Limited"),
        ("比亚迪股份有限公司", "BYD Company Limited"),  # pinyin initials, no table entry
    ],
)
def test_chinese_names_brands_and_acronyms_match_their_english_names(matcher, chinese, english):
    c = matcher.compare(chinese, english)
    assert c.score >= matcher.threshold, c.explain()


def test_place_prefixes_weigh_little(matcher):
    name = normalize("Hangzhou Hikvision Digital Technology Co., Ltd.")
    kinds = {t.text: t.kind for t in name.tokens}
    assert kinds["hangzhou"] == PLACE and kinds["digital"] == GENERIC
    assert matcher.score("Hikvision", "Hangzhou Hikvision Digital Technology Co., Ltd.") >= 0.5
    assert matcher.score("Shenzhen Hikvision", "Hangzhou Hikvision Digital Technology") >= 0.5


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("China Technology Company", "China Mobile Technology Company"),
        ("Beijing International Trading Co", "Shanghai International Trading Co"),
        ("Global Technology Holdings Limited", "Global Technology Group"),
        ("China Mobile Limited", "China Telecom Corporation Limited"),
        ("Huawei Technologies Co., Ltd.", "ZTE Corporation"),
        ("Example State University Social Media Lab", "SOCIAL DESIGN AGENCY"),
    ],
)
def test_generic_words_never_make_a_match(matcher, a, b):
    c = matcher.compare(a, b)
    assert c.score < matcher.threshold, c.explain()


def test_places_align_only_with_places_and_lookalike_words_do_not_match(matcher):
    c = matcher.compare("Hangzhou Hikvision Digital Technology Co., Ltd.", "HAMZA DIVISION")
    assert ("hangzhou", "hamza") not in {(a, b) for a, b, _ in c.pairs}
    assert c.score < matcher.threshold, c.explain()


def test_people_reordered_and_in_another_script(matcher):
    assert matcher.score("Smith, John", "John Smith", "Person") >= 0.5
    assert matcher.score("Сергей Лавров", "Sergey Lavrov", "Person") >= 0.5
    assert matcher.score("Barack Obama", "Michelle Obama", "Person") < 0.5


def test_explanation_adds_up_to_the_score(matcher):
    c = matcher.compare("Hangzhou Hikvision Digital Technology", "HIKVISION")
    model = matcher.scoring.model(True)
    logit = model.bias + sum(c.contributions.values())
    assert c.score == pytest.approx(1 / (1 + math.exp(-logit)))
    doc = c.explain()
    assert set(doc["features"]) >= {"coverage_min", "weakest_pair", "joined"}
    assert doc["aligned"][0]["query"] == "hikvision"


names = st.text(
    alphabet=st.sampled_from([*"abcdefghijklmnoprstuvwyz ,.-&", "华", "为", "Ж", "é"]),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip(" ,.-&"))


@settings(max_examples=200, deadline=None)
@given(names, names)
def test_score_is_symmetric_and_bounded(a, b):
    m = bundled_index().matcher
    ab, ba = m.score(a, b), m.score(b, a)
    assert 0.0 <= ab <= 1.0
    assert ab == pytest.approx(ba, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(names)
def test_a_name_with_a_distinctive_word_matches_itself(a):
    m = bundled_index().matcher
    if normalize(a).distinctive:
        assert m.score(a, a) >= m.threshold


GENERIC_WORDS = st.lists(
    st.sampled_from(
        [
            "international",
            "technology",
            "group",
            "holdings",
            "trading",
            "beijing",
            "shanghai",
            "hong kong",
            "china",
            "development",
        ]
    ),
    min_size=1,
    max_size=5,
)
LEGAL_FORMS = st.sampled_from(["", " Co., Ltd.", " Limited", " Corporation", " 有限公司"])


@settings(max_examples=100, deadline=None)
@given(GENERIC_WORDS, LEGAL_FORMS, GENERIC_WORDS, LEGAL_FORMS)
def test_names_of_generic_words_and_places_only_never_match(a, la, b, lb):
    m = bundled_index().matcher
    assert m.score(" ".join(a) + la, " ".join(b) + lb) < m.threshold
