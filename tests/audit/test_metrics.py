"""Audit metrics on constructed cases with known answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cleanroom.audit.metrics import (
    Shown,
    entropy,
    exploit_fraction,
    first_exposure,
    gini,
    top_share,
    topic_share_curve,
)


def feed(topics: str, watch_ms: int = 1000) -> list[Shown]:
    return [Shown(f"v{i}", t, f"c{i % 3}", watch_ms) for i, t in enumerate(topics)]


def test_a_rabbit_hole_shows_as_a_rising_topic_share():
    shown = feed("abcabaabaaaaaaaaaaaa")
    assert topic_share_curve(shown, "a", window=5) == [0.4, 0.8, 1.0, 1.0]
    assert topic_share_curve(shown, "c", window=10) == [0.1, 0.0]


def test_first_exposure_counts_videos_and_watch_time():
    shown = feed("aabxb", watch_ms=2000)
    assert first_exposure(shown, {"x"}) == (3, 6000)
    assert first_exposure(shown, {"z"}) is None
    assert first_exposure(feed("xa"), {"x"}) == (0, 0)


def test_exploit_fraction():
    assert exploit_fraction(feed("aabbc"), {"a", "b"}) == pytest.approx(0.8)
    assert exploit_fraction([], {"a"}) == 0.0


def test_entropy_of_known_distributions():
    assert entropy("aaaa") == 0.0
    assert entropy("abab") == pytest.approx(1.0)
    assert entropy("abcd") == pytest.approx(2.0)
    assert entropy("aab") == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))


def test_gini_of_known_distributions():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n-1)/n for one taking all
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        gini([1, -1])


def test_top_share_concentration():
    impressions = {f"c{i}": 1 for i in range(99)} | {"star": 901}
    assert top_share(impressions, 0.01) == pytest.approx(0.901)  # 1 of 100 creators
    assert top_share({"a": 1, "b": 1}, 0.01) == pytest.approx(0.5)  # at least one


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=50))
def test_gini_is_bounded_and_scale_free(xs):
    g = gini(xs)
    assert 0.0 <= g <= 1.0
    assert gini([3 * x for x in xs]) == pytest.approx(g, abs=1e-9)


def test_topics_from_co_engagement_find_the_communities():
    import numpy as np

    from cleanroom.audit.topics import DERIVED, ISOLATED, from_coengagement, from_tags

    # users 0-4 like videos a, b, c; users 5-9 like d, e; nobody else likes f with anyone
    pairs = [(u, i) for u in range(5) for i in (0, 1, 2)] + [
        (u, i) for u in range(5, 10) for i in (3, 4)
    ]
    pairs.append((10, 5))
    users = np.array([u for u, _ in pairs])
    items = np.array([i for _, i in pairs])
    tm = from_coengagement(users, items, list("abcdef"))
    assert tm.source == DERIVED
    assert tm.of("a") == tm.of("b") == tm.of("c") == "t:0"  # the larger community first
    assert tm.of("d") == tm.of("e") == "t:1"
    assert tm.of("f") == ISOLATED and tm.of("zzz") == ISOLATED
    tagged = from_tags([("a", ("cooking", "food")), ("b", ())])
    assert (tagged.of("a"), tagged.of("b")) == ("cooking", ISOLATED)


def test_exposure_report_from_aggregates():
    from cleanroom.audit.exposure import exposure_report
    from cleanroom.audit.topics import TAGGED, TopicMap

    topics = TopicMap({"v1": "cooking", "v2": "cooking", "v3": "news"}, TAGGED)
    day = 86_400_000
    rows = [
        {
            "model_version": "m1",
            "hour_ms": 0,
            "video": "v1",
            "creator": "c1",
            "region": "US",
            "impressions": 60,
        },
        {
            "model_version": "m1",
            "hour_ms": 3_600_000,
            "video": "v3",
            "creator": "c2",
            "region": "DE",
            "impressions": 20,
        },
        {
            "model_version": "m2",
            "hour_ms": day,
            "video": "v2",
            "creator": "c1",
            "region": "US",
            "impressions": 20,
        },
    ]
    r = exposure_report(rows, topics)
    assert r["impressions"] == 100 and r["topics_source"] == TAGGED
    assert r["by_topic"][0] == {"key": "cooking", "impressions": 80, "share": 0.8}
    assert r["topic_entropy_bits"] == pytest.approx(-(0.8 * math.log2(0.8) + 0.2 * math.log2(0.2)))
    assert [x["key"] for x in r["by_creator_region"]] == ["US", "DE"]
    assert r["concentration"]["top_1pct_creator_share"] == pytest.approx(0.8)  # c1 of 2 creators
    assert r["per_model_version"]["m2"]["impressions"] == 20
    assert [d["day_ms"] for d in r["per_day"]] == [0, day]
