"""How feeds would change under another ranking configuration: the summary a
reviewer of a model release reads beside the configuration diff.

The same model, user states and candidate pool, a fixed set of users and a
fixed seed; only the configuration differs (a change of model settings takes
effect with the next training, so its effect is not in this summary)."""

from __future__ import annotations

import heapq
from typing import Any

from cleanroom.foryou.engine import DEPTH, Engine
from cleanroom.foryou.feed import compute
from cleanroom.foryou.online import UserState
from cleanroom.foryou.ranker import RankingConfig


def feed_change(
    engine: Engine,
    new: RankingConfig,
    *,
    users: int = 200,
    top: int = 20,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Top-``top`` feeds of up to ``users`` users (those with state, by id)
    under the live configuration and under ``new``: how much they overlap,
    how many changed, and the share of items from creators the new
    configuration boosts."""
    old = engine.config
    model = engine.model
    pool = engine.pool(now_ms)
    chosen = heapq.nsmallest(users, engine.states.user_ids())
    boosted = set(new.creator_boosts) | set(old.creator_boosts)
    overlap = 0.0
    changed = 0
    share = {"before": 0, "after": 0}
    n_items = {"before": 0, "after": 0}
    for user in chosen:
        st = engine.states.get(user) or UserState(user, "*")
        state = st.snapshot()[0]
        feeds = {}
        for when, cfg in (("before", old), ("after", new)):
            ranked = compute(
                model, cfg, state, pool, engine.catalog, seed="review", mode="personalized",
                depth=min(DEPTH, top),
            )  # fmt: skip
            feeds[when] = ranked.videos[:top]
            share[when] += sum(c in boosted for c in ranked.creators[:top])
            n_items[when] += len(feeds[when])
        a, b = set(feeds["before"]), set(feeds["after"])
        overlap += len(a & b) / max(1, len(a | b))
        changed += feeds["before"] != feeds["after"]
    n = max(1, len(chosen))
    return {
        "users": len(chosen),
        "top": top,
        "feeds_changed": changed,
        "mean_overlap": round(overlap / n, 4),
        "boosted_creators": sorted(boosted),
        "boosted_share_before": round(share["before"] / max(1, n_items["before"]), 4),
        "boosted_share_after": round(share["after"] / max(1, n_items["after"]), 4),
        "model_version": model.version,
        "pool_version": pool.version,
    }
