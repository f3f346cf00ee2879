"""What the engine adapts to the data in front of it, chosen on held-out data,
not by hand: how much all-time popularity adds to the heads' score (the
``blend``). Dense catalogues where everyone watched the hits reward popularity;
sparse ones reward the user's own history — one constant cannot fit both.

The choice is made on a validation split when there is one (``cleanroom
eval --valid``), else on a held-out share of each user's positive engagements
(seeded by the user id, so the same data holds out the same rows): a model is
trained without them, every value of the grid ranks each held-out user's feed
as it would be served (retrieval, features, heads, re-ranking; no
exploration), and the value with the best NDCG@20 goes into the model trained
on everything. The model card says what was tried, on what, and what won.

Forgetting a user stays exact for the model as trained (the blend is one of
its settings, like the regularisation); the next full retraining chooses the
blend again without them."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from cleanroom.foryou.data import POSITIVE_CODES, TrainingSet
from cleanroom.foryou.feed import eligible, features, rerank, retrieve
from cleanroom.foryou.model import F, Model
from cleanroom.foryou.online import UserState
from cleanroom.foryou.ranker import score

if TYPE_CHECKING:
    from cleanroom.foryou.engine import Engine

BLEND_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # weight of log(1 + popularity)
HOLDOUT_SHARE = 0.1  # of a user's positive engagements, held out to choose on
MIN_POSITIVES = 5  # users with fewer keep all theirs in training
MAX_USERS = 2000  # held-out users ranked per value (a seeded sample beyond)
K = 20


def holdout(data: TrainingSet) -> tuple[TrainingSet, dict[str, set[str]]]:
    """``data`` without a held-out share of its users' positive engagements,
    and those engagements (user -> videos)."""
    pos = POSITIVE_CODES[data.code]
    truth: dict[str, set[str]] = {}
    rows = np.nonzero(pos)[0]
    order = rows[np.argsort(data.u[rows], kind="stable")]
    bounds = np.searchsorted(data.u[order], np.arange(len(data.users) + 1))
    held: list[np.ndarray] = []  # (user, item) pairs held out, as user * items + item
    for n, user in enumerate(data.users):
        mine = order[bounds[n] : bounds[n + 1]]
        if len(mine) < MIN_POSITIVES:
            continue
        rng = np.random.default_rng(_seed(user))
        out = rng.choice(mine, max(1, round(HOLDOUT_SHARE * len(mine))), replace=False)
        truth[user] = {data.items[j] for j in data.i[out]}
        held.append(n * len(data.items) + data.i[out].astype(np.int64))
    # every row of a held-out (user, video) goes (views, likes, skips): what the
    # user did with it is what the feed must find
    pairs = data.u.astype(np.int64) * len(data.items) + data.i
    keep = ~np.isin(pairs, np.concatenate(held)) if held else np.ones(len(data.u), bool)
    return data.rows(keep), truth


def choose_blend(engine: Engine, truth: dict[str, set[str]], on: str) -> dict[str, Any]:
    """Rank each held-out user's feed with the engine's live model for every
    value of the grid; the tuning record (the winner under ``chosen``)."""
    model, cfg = engine.model, dataclasses.replace(engine.config, exploration=0.0)
    pool = engine.pool()
    users = sorted(truth)
    if len(users) > MAX_USERS:
        rng = np.random.default_rng(0)
        users = sorted(rng.choice(users, MAX_USERS, replace=False).tolist())
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    gains = np.zeros(len(BLEND_GRID))
    ranked = 0
    for user in users:
        st = engine.state_of(user) or UserState(user, "*")
        got = retrieve(model, cfg, st, pool, engine.catalog)
        cands, meta = eligible(got, st, engine.catalog, pool.catalog_seq)
        if not cands:
            continue
        x, _ = features(model, got, st, cands, meta, pool.bucket_ms)
        base = score(model, x, cfg.weights)  # (the trial model has no blend yet)
        hit = np.array([v in truth[user] for v in cands])
        ideal = disc[: min(len(truth[user]), K)].sum()
        for g, beta in enumerate(BLEND_GRID):
            s = base + beta * x[:, F["popular"]]
            order = np.lexsort((np.arange(len(cands)), -s)).tolist()
            top = rerank(order, cands, meta, cfg, K)
            gains[g] += float((hit[top] * disc[: len(top)]).sum() / ideal)
        ranked += 1
    ndcg = gains / max(1, ranked)
    best = int(np.argmax(ndcg))  # (ties: the smaller weight, first in the grid)
    return {
        "chosen": {"popular": BLEND_GRID[best]} if BLEND_GRID[best] else {},
        "what": "weight of log(1 + all-time positive engagements) added to the heads' score",
        "on": on,
        "users": ranked,
        "metric": f"NDCG@{K}",
        "tried": [
            {"popular": b, "ndcg": round(float(v), 5)}
            for b, v in zip(BLEND_GRID, ndcg, strict=True)
        ],
    }


def train_tuned(engine: Engine, data: TrainingSet) -> Model:
    """A model of ``data`` with its blend chosen on held-out engagements (see
    the module's text); ``engine`` lends its configuration and clock."""
    from cleanroom.foryou.engine import Engine

    part, truth = holdout(data)
    cfg = engine.config
    if not truth:
        record: dict[str, Any] = {
            "chosen": {},
            "on": f"nothing held out: no user has {MIN_POSITIVES} positive engagements",
        }
    else:
        trial = Engine(cfg, clock=engine.clock, fresh_window_ms=engine.fresh_window_ms)
        trial.bootstrap(part, train=False)
        trial.swap(Model.train(part, cfg.model, cfg.priors))
        share = f"{HOLDOUT_SHARE:.0%}"
        record = choose_blend(
            trial, truth, f"{share} of the positive engagements of {len(truth):,} users, held out"
        )
    model = Model.train(data, cfg.model, cfg.priors)
    model.tuned(record)
    return model


def _seed(user: str) -> int:
    return int.from_bytes(hashlib.sha256(b"holdout:" + user.encode()).digest()[:8], "little")
