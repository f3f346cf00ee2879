"""The exposure report: across real traffic, from aggregates only (impressions
per model version, hour and video), what the algorithm showed — by topic, by
creator region, how concentrated on a few creators, over time and per model
version."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from cleanroom.audit.metrics import entropy_of_counts, gini, top_share
from cleanroom.audit.topics import TopicMap

DAY_MS = 86_400_000


def _shares(c: Counter[str], top: int = 20) -> list[dict[str, Any]]:
    total = sum(c.values()) or 1
    return [{"key": k, "impressions": n, "share": n / total} for k, n in c.most_common(top)]


def _concentration(by_creator: Counter[str]) -> dict[str, float]:
    return {
        "top_1pct_creator_share": top_share(dict(by_creator), 0.01),
        "creator_gini": gini(by_creator.values()),
        "creators": len(by_creator),
    }


def exposure_report(
    rows: Iterable[dict[str, Any]], topics: TopicMap, approved_config: str | None = None
) -> dict[str, Any]:
    """Aggregate exposure rows (``model_version, ranking_config, hour_ms, video,
    creator, region, impressions, boosted_impressions``) into the report's
    sections. With the approved ranking configuration, impressions served under
    any other configuration are compared with it: each creator's excess share."""
    total = boosted = unapproved_boosted = 0
    per_config: dict[str, Counter[str]] = defaultdict(Counter)
    by_topic: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    per_model: dict[str, Counter[str]] = defaultdict(Counter)
    per_day: dict[int, Counter[str]] = defaultdict(Counter)
    for r in rows:
        n = int(r["impressions"])
        if n < 0:
            raise ValueError("impressions are not negative")
        total += n
        if approved_config is None or r.get("ranking_config") == approved_config:
            boosted += int(r.get("boosted_impressions", 0))
        else:  # labelled, but by a ranking nobody approved
            unapproved_boosted += int(r.get("boosted_impressions", 0))
        per_config[r.get("ranking_config", "")][r.get("creator") or "unknown"] += n
        topic = topics.of(r["video"])
        by_topic[topic] += n
        by_region[r.get("region") or "unknown"] += n
        per_model[r["model_version"]][r.get("creator") or "unknown"] += n
        per_day[int(r["hour_ms"]) // DAY_MS * DAY_MS][topic] += n
    by_creator = sum(per_model.values(), Counter())
    return {
        "impressions": total,
        "topics_source": topics.source,
        "by_topic": _shares(by_topic),
        "topic_entropy_bits": entropy_of_counts(by_topic.values()),
        "by_creator_region": _shares(by_region),
        "concentration": _concentration(by_creator),
        "per_model_version": {
            m: {"impressions": sum(c.values()), **_concentration(c)} for m, c in per_model.items()
        },
        # labelled boosts under the approved ranking (declared, approved boosts and
        # creator boosts of the released configuration)
        "declared_boosts": {
            "impressions": boosted,
            "share": boosted / total if total else 0.0,
            "labelled_under_unapproved_ranking": unapproved_boosted,
        },
        "per_ranking_config": {
            c: {"impressions": sum(n.values()), "approved": c == approved_config}
            for c, n in per_config.items()
        },
        "excess_by_creator": _excess(per_config, approved_config),
        "per_day": [
            {"day_ms": d, "impressions": sum(c.values()), "by_topic": _shares(c, 5)}
            for d, c in sorted(per_day.items())
        ],
    }


def _excess(per_config: dict[str, Counter[str]], approved: str | None) -> list[dict[str, Any]]:
    """Creators whose share of impressions under configurations other than the
    approved one exceeds their share under the approved one."""
    if approved is None or approved not in per_config:
        return []
    base = per_config[approved]
    base_total = sum(base.values()) or 1
    other: Counter[str] = Counter()
    for c, counts in per_config.items():
        if c != approved:
            other.update(counts)
    other_total = sum(other.values())
    if not other_total:
        return []
    out = [
        {
            "creator": k,
            "share_unapproved": n / other_total,
            "share_approved": base.get(k, 0) / base_total,
            "excess": n / other_total - base.get(k, 0) / base_total,
        }
        for k, n in other.items()
    ]
    return sorted((x for x in out if x["excess"] > 0), key=lambda x: -x["excess"])[:10]
