"""A feed as a pure function of (model, user state, pool, catalog version, seed,
time bucket, mode): retrieval from several sources, ranking by the published
weights, re-ranking rules, and an explanation for every item.

Nothing here reads a clock, a global or a random source that is not seeded by
the inputs, so the same inputs give the same feed, bit for bit (``replay``)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cleanroom.foryou.model import BASELINE, FEATURES, F, Model, affinity
from cleanroom.foryou.online import WORLD, UserState
from cleanroom.foryou.pool import Catalog, Pool
from cleanroom.foryou.ranker import RankingConfig, contributions, score

Mode = Literal["personalized", "popular"]
MODES = ("personalized", "popular")
FRESH_DAY_MS = 86_400_000
RECENT_LIKES = 20

# Words a user understands, per feature (the explanation of a contribution).
REASONS = {
    "similar_liked": "Similar to videos you liked",
    "similar_skipped": "Related to videos you skipped",
    "taste": "Matches what you usually watch",
    "popular": "Popular worldwide",
    "exposure": "Widely watched",
    "region_popular": "Popular in your region",
    "rising": "Rising in your region",
    "followed_creator": "From a creator you follow",
    "fresh": "New upload",
    "co_engaged": "Often liked together with videos you liked",
    "affinity": "Close to what you watch",
}
SOURCES = {
    "embedding": "Matches your taste",
    "similar": "Similar to videos you liked",
    "related": "Close to videos you watched",
    "co_engaged": "Liked by people who liked the same videos",
    "popular_region": "Popular in your region",
    "popular_world": "Popular worldwide",
    "rising": "Rising in your region",
    "followed": "From a creator you follow",
    "fresh": "New upload",
}


@dataclass(slots=True)
class FeedItem:
    video: str
    creator: str
    score: float
    sources: list[str]
    reasons: list[dict[str, Any]] = field(default_factory=list)
    boost: dict[str, str] | None = None
    # the item's features until its explanation is written (only pages served are)
    x: np.ndarray | None = field(default=None, repr=False, compare=False)
    known: bool = field(default=True, repr=False, compare=False)
    midx: int = field(default=-1, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "video": self.video,
            "creator": self.creator,
            "score": round(self.score, 6),
            "sources": self.sources,
            "why": self.reasons,
        }
        if self.boost:
            d["boost"] = self.boost
        return d


def items_digest(videos: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(videos).encode()).hexdigest()


def _gumbel(seed: str, n: int) -> np.ndarray:
    """Exploration noise for ``n`` candidates (sorted by id), reproduced by a
    replay with the same seed."""
    key = int.from_bytes(hashlib.sha256(f"explore:{seed}".encode()).digest()[:8], "big")
    return np.random.default_rng(key).gumbel(size=n)


def compute(
    model: Model,
    cfg: RankingConfig,
    state: UserState,
    pool: Pool,
    catalog: Catalog,
    *,
    seed: str,
    mode: Mode,
    depth: int,
) -> list[FeedItem]:
    """The ranked and re-ranked feed of ``depth`` items at most (each item
    keeps its features; :func:`explain_items` writes the reasons of the items
    actually served)."""
    if mode == "popular":
        return _popular(cfg, state.region, pool, catalog, depth)
    at = pool.catalog_seq
    region = state.region
    now = pool.bucket_ms
    liked, skipped = state.liked_and_skipped()
    idx = model.index_of
    p_idx = np.array([idx[v] for v in liked if v in idx], np.int64)
    n_idx = np.array([idx[v] for v in skipped if v in idx], np.int64)
    sim_p, sim_n, q = model.user_vectors(p_idx, n_idx)
    r = cfg.retrieval

    # what each source proposes, in the order sources are listed on an item
    found: list[tuple[str, list[str]]] = []
    if len(p_idx):
        k = min(r.get("embedding", 200), len(model.items))
        _, hits = model.index.search(q.reshape(1, -1).astype(np.float32), k)
        found.append(("embedding", model.names(hits[0][hits[0] >= 0])))
        found.append(("similar", _best(model, sim_p, r.get("similar", 200))))
    if len(p_idx) or len(n_idx):
        found.append(("related", _best(model, sim_p + sim_n, r.get("related", 200))))
    co_score: dict[str, float] = {}
    for v in liked[-RECENT_LIKES:]:
        for w, c in pool.co.get(v, {}).items():
            co_score[w] = co_score.get(w, 0.0) + c
    co_top = sorted(co_score, key=lambda w: (-co_score[w], w))[: r.get("similar", 200)]
    found.append(("co_engaged", co_top))
    pop_region = dict(pool.popular.get(region, []))
    pop_world = dict(pool.popular.get(WORLD, []))
    found.append(("popular_region", list(pop_region)[: r.get("popular", 100)]))
    found.append(("popular_world", list(pop_world)[: r.get("popular", 100)]))
    rising = dict(pool.rising.get(region, []))
    found.append(("rising", list(rising)[: r.get("rising", 50)]))
    found.append(("fresh", [v for v, _ in pool.fresh[: r.get("fresh", 50)]]))
    per = max(1, r.get("followed", 50) // max(1, len(state.follows)))
    followed: list[str] = []
    for c in sorted(state.follows):
        followed.extend(catalog.newest_of(c, per, at))
    found.append(("followed", followed))
    boosts = {b.video: b for b in pool.boosts if b.active(now, region)}

    # exclusions: seen, not interested, not (yet) in the catalog
    proposed: set[str] = set()
    for _, videos in found:
        proposed.update(videos)
    proposed.difference_update(state.seen)
    proposed.difference_update(state.not_interested)
    cands = []
    meta = {}
    for v in sorted(proposed):
        it = catalog.get(v, at)
        if it is not None:
            cands.append(v)
            meta[v] = it
    if not cands:
        return []
    by_source = [(name, set(videos)) for name, videos in found if videos]

    x = np.zeros((len(cands), len(FEATURES)))
    mi = np.array([idx.get(v, -1) for v in cands])
    known = mi >= 0
    x[known, F["similar_liked"]] = sim_p[mi[known]]
    x[known, F["similar_skipped"]] = sim_n[mi[known]]
    x[known, F["taste"]] = model.V[mi[known]] @ q
    x[:, F["affinity"]] = affinity(x[:, F["similar_liked"]], x[:, F["similar_skipped"]])
    # a video the model has not seen yet (a fresh upload) is neither close to nor
    # far from the user's history: it gets the typical affinity of the others
    if known.any() and not known.all():
        x[~known, F["affinity"]] = np.median(x[known, F["affinity"]])
    x[known, F["popular"]] = np.log1p(model.pos[mi[known]])
    x[known, F["exposure"]] = np.log1p(model.pos[mi[known]] + model.neg[mi[known]])
    items = [meta[v] for v in cands]
    x[:, F["region_popular"]] = np.log1p([pop_region.get(v, 0.0) for v in cands])
    if rising:
        x[:, F["rising"]] = [rising.get(v, 0.0) for v in cands]
    if state.follows:
        x[:, F["followed_creator"]] = [it.creator in state.follows for it in items]
    created = np.array([it.created_ms for it in items], np.float64)
    x[:, F["fresh"]] = np.where(
        created > 0, np.exp(-np.maximum(0.0, now - created) / FRESH_DAY_MS), 0.0
    )
    if co_score:
        x[:, F["co_engaged"]] = np.log1p([co_score.get(v, 0.0) for v in cands])
    s = score(model, x, cfg.weights)
    if cfg.exploration:
        s = s + cfg.exploration * _gumbel(seed, len(cands))
    if boosts:
        for n, v in enumerate(cands):
            if v in boosts:
                s[n] += boosts[v].factor
    # best first; ties by video id (the candidates are sorted by id)
    order = np.lexsort((np.arange(len(cands)), -s)).tolist()
    chosen = rerank(order, cands, meta, cfg, depth)
    out = []
    for n in chosen:
        v = cands[n]
        srcs = [name for name, members in by_source if v in members]
        item = FeedItem(v, meta[v].creator, float(s[n]), srcs)
        item.x, item.known, item.midx = x[n], bool(known[n]), int(mi[n])
        if v in boosts:
            b = boosts[v]
            item.boost = {"id": b.id, "label": b.label or cfg.boost_label}
        out.append(item)
    return out


def _best(model: Model, scores: np.ndarray, k: int) -> list[str]:
    """The model's videos with the ``k`` highest positive scores."""
    k = min(k, len(model.items) - 1)
    if k < 1:
        return []
    top = np.argpartition(-scores, k)[:k]
    return model.names(top[scores[top] > 0])


def explain_items(
    model: Model, cfg: RankingConfig, liked_videos: list[str], region: str, items: list[FeedItem]
) -> None:
    """Write "why this video" for the items that have none yet: the main
    contributions to each score (exact: the score lost without the source), a
    liked video it resembles, a declared boost first."""
    todo = [it for it in items if it.x is not None]
    if not todo:
        return
    idx = model.index_of
    liked = np.array([idx[v] for v in liked_videos if v in idx], np.int64)
    x = np.stack([it.x for it in todo])
    contrib = contributions(model, x, cfg.weights)
    examples = _examples(model, liked, np.array([it.midx for it in todo]))
    for row, it in enumerate(todo):
        it.reasons = explain(contrib[row], x[row], region, example=examples[row], known=it.known)
        if it.boost:
            it.reasons.insert(0, {"source": "boost", "text": it.boost["label"]})
        it.x = None


def _examples(model: Model, liked: np.ndarray, items: np.ndarray) -> list[str | None]:
    """For each item (model index, -1 if unknown): the liked video that adds
    most to its similarity, if any adds."""
    out: list[str | None] = [None] * len(items)
    ok = np.nonzero(items >= 0)[0]
    if not len(liked) or not len(ok):
        return out
    w = model.B[np.ix_(liked, items[ok])]
    best = w.argmax(0)
    for k, col in enumerate(ok):
        if w[best[k], k] > 0:
            out[col] = model.items[liked[best[k]]]
    return out


MODEL_FEATURES = {F[f] for f in ("similar_liked", "similar_skipped", "taste", "affinity")}


def explain(
    contrib: np.ndarray,
    x: np.ndarray,
    region: str,
    *,
    example: str | None,
    known: bool = True,
    top: int = 3,
) -> list[dict[str, Any]]:
    """The main positive contributions, in words (feature, text, contribution).
    For a video the model does not know yet, nothing is said about similarity."""
    order = sorted(
        (
            j
            for j in range(len(FEATURES))
            if contrib[j] > 0 and x[j] != BASELINE[j] and (known or j not in MODEL_FEATURES)
        ),
        key=lambda j: (-contrib[j], j),
    )[:top]
    out = []
    for j in order:
        name = FEATURES[j]
        text = REASONS[name]
        if name in ("region_popular", "rising"):
            text = f"{text} ({region})" if region != WORLD else f"{text.split(' in ')[0]} worldwide"
        if name == "similar_liked" and example:
            text = f"{text}, like {example}"
        out.append({"source": name, "text": text, "contribution": round(float(contrib[j]), 6)})
    return out


def rerank(
    order: list[int], cands: list[str], meta: dict[str, Any], cfg: RankingConfig, depth: int
) -> list[int]:
    """Greedy re-ranking: no video of the same creator within ``creator_gap``
    places, no topic above ``topic_cap`` of the feed. Candidates that cannot be
    placed are left out (the rules hold on every feed).

    Each place takes the best remaining candidate that fits. A candidate held
    back by the creator gap waits in ``held`` (all of them rank above the
    unscanned rest, so they are tried first); one over a topic cap never fits
    again (counts only grow) and is dropped."""
    chosen: list[int] = []
    topic_count: dict[str, int] = {}
    cap = max(1, math.ceil(cfg.topic_cap * depth))
    gap = cfg.creator_gap
    held: list[int] = []
    rest = iter(order)

    def fits(n: int, recent: list[str]) -> bool | None:
        """True if it fits now, False if held back by the gap, None if never."""
        it = meta[cands[n]]
        if any(topic_count.get(t, 0) >= cap for t in it.topics):
            return None
        return it.creator not in recent

    while len(chosen) < depth:
        recent = [meta[cands[n]].creator for n in chosen[-gap:]] if gap else []
        pick = None
        for pos, n in enumerate(held):
            ok = fits(n, recent)
            if ok:
                pick = n
                del held[pos]
                break
        if pick is None:
            for n in rest:
                ok = fits(n, recent)
                if ok:
                    pick = n
                    break
                if ok is False:
                    held.append(n)
        if pick is None:
            break
        chosen.append(pick)
        for t in set(meta[cands[pick]].topics):
            topic_count[t] = topic_count.get(t, 0) + 1
        held = [n for n in held if fits(n, []) is not None]
    return chosen


def _popular(
    cfg: RankingConfig, region: str, pool: Pool, catalog: Catalog, depth: int
) -> list[FeedItem]:
    """The non-personalised feed: popular in the region and worldwide, nothing
    about the user but their region."""
    reg = dict(pool.popular.get(region, []))
    world = dict(pool.popular.get(WORLD, []))
    top_r = max(reg.values(), default=0.0) or 1.0
    top_w = max(world.values(), default=0.0) or 1.0
    cands, meta, s, srcs = [], {}, [], []
    for v in sorted(set(reg) | set(world)):
        it = catalog.get(v, pool.catalog_seq)
        if it is None:
            continue
        cands.append(v)
        meta[v] = it
        s.append(reg.get(v, 0.0) / top_r + 0.5 * world.get(v, 0.0) / top_w)
        srcs.append([n for n, d in (("popular_region", reg), ("popular_world", world)) if v in d])
    order = sorted(range(len(cands)), key=lambda n: (-s[n], cands[n]))
    out = []
    for n in rerank(order, cands, meta, cfg, depth):
        v = cands[n]
        reasons = []
        if v in reg:
            reasons.append(
                {
                    "source": "region_popular",
                    "text": f"Popular in your region ({region})",
                    "contribution": round(reg[v] / top_r, 6),
                }
            )
        if v in world:
            reasons.append(
                {
                    "source": "popular",
                    "text": "Popular worldwide",
                    "contribution": round(0.5 * world[v] / top_w, 6),
                }
            )
        out.append(FeedItem(v, meta[v].creator, float(s[n]), srcs[n], reasons))
    return out
