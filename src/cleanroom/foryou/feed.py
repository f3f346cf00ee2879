"""A feed as a pure function of (model, user state, pool, catalog version, seed,
time bucket, mode): retrieval from several sources, ranking by the published
weights, re-ranking rules, and an explanation for every item.

Nothing here reads a clock, a global or a random source that is not seeded by
the inputs, so the same inputs give the same feed, bit for bit (``replay``)."""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal

import numpy as np

from cleanroom.foryou.data import Item
from cleanroom.foryou.model import BASELINE, FEATURES, F, Model, affinity, topic_share
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
    "topic_share": "A topic you watch to the end",
}
SOURCES = {
    "embedding": "Matches your taste",
    "similar": "Similar to videos you liked",
    "related": "Close to videos you watched",
    "co_engaged": "Liked by people who liked the same videos",
    "popular_region": "Popular in your region",
    "popular_world": "Popular worldwide",
    "rising": "Rising in your region",
    "fresh": "New upload",
    "followed": "From a creator you follow",
    "boosted": "Promoted (a declared, approved boost)",
}


@dataclass(slots=True)
class FeedItem:
    """A served item: the video, its score and sources, and the reasons shown to the user."""

    video: str
    creator: str
    score: float
    sources: list[str]
    reasons: list[dict[str, Any]] = field(default_factory=list)
    boost: dict[str, str] | None = None

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


SOURCE_ORDER = tuple(SOURCES)  # the order in which compute() consults the sources


@dataclass
class Ranked:
    """A computed feed, compactly: a few lists and arrays instead of an object
    per item (thousands of feeds are kept for paging and replay, and the
    cyclic garbage collector would walk every object of each). Items are made,
    and explained, for the pages served (:meth:`page`)."""

    mode: Mode
    region: str
    videos: list[str]
    creators: list[str]
    scores: np.ndarray
    sources: np.ndarray  # bit n set: source SOURCE_ORDER[n] proposed the video
    x: np.ndarray | None = None  # features (personalised)
    known: np.ndarray | None = None  # in the model
    midx: np.ndarray | None = None  # model index, -1 if not in the model
    shares: np.ndarray | None = None  # (region, world) score parts (popular)
    boosts: dict[int, dict[str, str]] = field(default_factory=dict)  # rank -> boost

    def __len__(self) -> int:
        return len(self.videos)

    def page(
        self, start: int, stop: int, *, model: Model | None, cfg: RankingConfig, liked: list[str]
    ) -> list[FeedItem]:
        """Items ``start:stop`` with their sources and reasons."""
        rows = range(start, min(stop, len(self.videos)))
        items = [
            FeedItem(
                self.videos[n],
                self.creators[n],
                float(self.scores[n]),
                [name for k, name in enumerate(SOURCE_ORDER) if int(self.sources[n]) >> k & 1],
                boost=self.boosts.get(n),
            )
            for n in rows
        ]
        if self.shares is not None:
            for n, it in zip(rows, items, strict=True):
                it.reasons = _popular_reasons(self.shares[n], self.region)
        elif model is not None and self.x is not None and len(items):
            sel = np.arange(rows.start, rows.stop)
            _explain(
                model, cfg, liked, self.region, items, self.x[sel], self.known[sel], self.midx[sel]
            )
        for it in items:
            if it.boost:
                it.reasons.insert(0, {"source": "boost", "text": it.boost["label"]})
        return items


_BIT = {name: 1 << n for n, name in enumerate(SOURCE_ORDER)}


def _mask(names: Iterable[str]) -> int:
    return sum(_BIT[n] for n in names)


def _masks(videos: list[str], by_source: list[tuple[str, set[str]]]) -> np.ndarray:
    """Per video, the bits of the sources that proposed it (set intersections)."""
    pos = {v: n for n, v in enumerate(videos)}
    out = np.zeros(len(videos), np.int32)
    for name, members in by_source:
        hit = [pos[v] for v in members & pos.keys()]
        if hit:
            out[hit] |= _BIT[name]
    return out


def items_digest(videos: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(videos).encode()).hexdigest()


def _gumbel(seed: str, n: int) -> np.ndarray:
    """Exploration noise for ``n`` candidates (sorted by id), reproduced by a
    replay with the same seed."""
    key = int.from_bytes(hashlib.sha256(f"explore:{seed}".encode()).digest()[:8], "big")
    return np.random.default_rng(key).gumbel(size=n)


@dataclass(slots=True)
class Retrieved:
    """What retrieval found for one user: each source's candidates (in the
    order sources are listed on an item) and the signals the features reuse."""

    sim_p: np.ndarray  # similarity of every model video to the user's likes
    sim_n: np.ndarray  # ... and to their skips
    q: np.ndarray  # the user's taste vector
    found: list[tuple[str, list[str]]]
    co_score: dict[str, float]
    pop_region: dict[str, float]
    rising: dict[str, float]
    boosts: dict[str, Any]  # video -> the active boost on it
    topics: dict[str, tuple[int, int]] = field(default_factory=dict)  # tag -> (liked, engaged)


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
) -> Ranked:
    """The ranked and re-ranked feed of ``depth`` items at most (with the
    features of each item, from which :meth:`Ranked.page` explains the items
    actually served): retrieve, keep the eligible candidates, compute their
    features, score, re-rank."""
    if mode == "popular":
        return _popular(cfg, state.region, pool, catalog, depth)
    got = retrieve(model, cfg, state, pool, catalog)
    cands, meta = eligible(got, state, catalog, pool.catalog_seq)
    if not cands:
        return Ranked(mode, state.region, [], [], np.zeros(0), np.zeros(0, np.int32))
    x, mi = features(model, got, state, cands, meta, pool.bucket_ms)
    s = scores(model, cfg, x, got, cands, meta, seed)
    # best first; ties by video id (the candidates are sorted by id)
    order = np.lexsort((np.arange(len(cands)), -s)).tolist()
    chosen = rerank(order, cands, meta, cfg, depth)
    sel = np.array(chosen, np.int64)
    videos = [cands[n] for n in chosen]
    by_source = [(name, set(found)) for name, found in got.found if found]
    boosts = got.boosts
    return Ranked(
        mode,
        state.region,
        videos,
        [meta[v].creator for v in videos],
        s[sel],
        _masks(videos, by_source),
        x[sel],
        mi[sel] >= 0,
        mi[sel],
        boosts={
            n: {"id": boosts[v].id, "label": boosts[v].label or cfg.boost_label}
            if v in boosts
            else {"id": f"creator:{meta[v].creator}", "label": cfg.boost_label}
            for n, v in enumerate(videos)
            if v in boosts or meta[v].creator in cfg.creator_boosts
        },
    )


def retrieve(
    model: Model, cfg: RankingConfig, state: UserState, pool: Pool, catalog: Catalog
) -> Retrieved:
    """Stage 1: what each source proposes for the user."""
    region = state.region
    liked, skipped = state.liked_and_skipped()
    idx = model.index_of
    p_idx = np.array([idx[v] for v in liked if v in idx], np.int64)
    n_idx = np.array([idx[v] for v in skipped if v in idx], np.int64)
    sim_p, sim_n, q = model.user_vectors(p_idx, n_idx)
    r = cfg.retrieval
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
    co_top = heapq.nsmallest(r.get("similar", 200), co_score, key=lambda w: (-co_score[w], w))
    found.append(("co_engaged", co_top))
    # (the pool's dicts, shared by every feed of the bucket: read, never changed)
    pop_region = pool.scores("popular", region)
    pop_world = pool.scores("popular", WORLD)
    # the most popular videos the user has not seen (a user who has seen the
    # top of the list gets the next ones: the pool's lists are deeper)
    n_pop = r.get("popular", 100)
    found.append(("popular_region", _unseen(pop_region, state, n_pop)))
    found.append(("popular_world", _unseen(pop_world, state, n_pop)))
    rising = pool.scores("rising", region)
    found.append(("rising", list(rising)[: r.get("rising", 50)]))
    found.append(("fresh", [v for v, _ in pool.fresh[: r.get("fresh", 50)]]))
    per = max(1, r.get("followed", 50) // max(1, len(state.follows)))
    followed: list[str] = []
    for c in sorted(state.follows):
        followed.extend(catalog.newest_of(c, per, pool.catalog_seq))
    found.append(("followed", followed))
    boosts = {b.video: b for b in pool.boosts if b.active(pool.bucket_ms, region)}
    found.append(("boosted", sorted(boosts)))  # a boost also makes its video a candidate
    topics = _topic_counts(liked, skipped, catalog, pool.catalog_seq) if model.uses_topics else {}
    return Retrieved(sim_p, sim_n, q, found, co_score, pop_region, rising, boosts, topics)


def _topic_counts(
    liked: list[str], skipped: list[str], catalog: Catalog, at: int
) -> dict[str, tuple[int, int]]:
    """Per topic tag (a video's first), how many of the user's liked and of
    their engaged (liked or skipped) videos carry it."""
    out: dict[str, tuple[int, int]] = {}
    for videos, like in ((liked, 1), (skipped, 0)):
        for _, it in catalog.present(videos, at):
            if it.topics:
                n_liked, n_engaged = out.get(it.topics[0], (0, 0))
                out[it.topics[0]] = (n_liked + like, n_engaged + 1)
    return out


def _unseen(ranked: dict[str, float], state: UserState, n: int) -> list[str]:
    out: list[str] = []
    for v in ranked:
        if v not in state.seen and v not in state.not_interested:
            out.append(v)
            if len(out) >= n:
                break
    return out


def eligible(
    got: Retrieved, state: UserState, catalog: Catalog, at: int
) -> tuple[list[str], dict[str, Item]]:
    """Stage 2: the candidates left after the exclusions (seen, not
    interested, not (yet) in the catalog), sorted by id, with their metadata."""
    proposed: set[str] = set()
    for _, videos in got.found:
        proposed.update(videos)
    proposed.difference_update(state.seen)
    proposed.difference_update(state.not_interested)
    present = catalog.present(sorted(proposed), at)
    return [v for v, _ in present], dict(present)


def features(
    model: Model,
    got: Retrieved,
    state: UserState,
    cands: list[str],
    meta: dict[str, Item],
    now: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 3: the feature matrix of the candidates, and each candidate's row
    in the model (-1 for a video the model has not seen)."""
    x = np.zeros((len(cands), len(FEATURES)))
    mi = np.fromiter(map(model.index_of.get, cands, repeat(-1)), np.int64, len(cands))
    known = mi >= 0
    x[known, F["similar_liked"]] = got.sim_p[mi[known]]
    x[known, F["similar_skipped"]] = got.sim_n[mi[known]]
    x[known, F["taste"]] = model.V[mi[known]] @ got.q
    x[:, F["affinity"]] = affinity(x[:, F["similar_liked"]], x[:, F["similar_skipped"]])
    # a video the model has not seen yet (a fresh upload) is neither close to nor
    # far from the user's history: it gets the typical affinity of the others
    if known.any() and not known.all():
        x[~known, F["affinity"]] = np.median(x[known, F["affinity"]])
    x[known, F["popular"]] = np.log1p(model.pos[mi[known]])
    x[known, F["exposure"]] = np.log1p(model.pos[mi[known]] + model.neg[mi[known]])
    items = [meta[v] for v in cands]
    x[:, F["region_popular"]] = np.log1p(_lookup(got.pop_region, cands))
    if got.rising:
        x[:, F["rising"]] = _lookup(got.rising, cands)
    if state.follows:
        x[:, F["followed_creator"]] = [it.creator in state.follows for it in items]
    created = np.array([it.created_ms for it in items], np.float64)
    x[:, F["fresh"]] = np.where(
        created > 0, np.exp(-np.maximum(0.0, now - created) / FRESH_DAY_MS), 0.0
    )
    if got.co_score:
        x[:, F["co_engaged"]] = np.log1p(_lookup(got.co_score, cands))
    if got.topics:
        counts = np.array(
            [got.topics.get(it.topics[0], (0, 0)) if it.topics else (-1, -1) for it in items],
            np.float64,
        ).reshape(len(items), 2)
        tagged = counts[:, 1] >= 0
        x[tagged, F["topic_share"]] = topic_share(
            counts[tagged, 0], counts[tagged, 1], model.share_prior
        )
    return x, mi


def _lookup(values: dict[str, float], keys: list[str]) -> np.ndarray:
    """``values[k]`` for each key (0 where absent), as an array."""
    return np.fromiter(map(values.get, keys, repeat(0.0)), np.float64, len(keys))


def scores(
    model: Model,
    cfg: RankingConfig,
    x: np.ndarray,
    got: Retrieved,
    cands: list[str],
    meta: dict[str, Item],
    seed: str,
) -> np.ndarray:
    """Stage 4: the published weights on the features, the seeded exploration
    noise, the approved boosts and the configuration's creator boosts."""
    s = score(model, x, cfg.weights)
    if cfg.exploration:
        s = s + cfg.exploration * _gumbel(seed, len(cands))
    if got.boosts:
        for n, v in enumerate(cands):
            if v in got.boosts:
                s[n] += got.boosts[v].factor
    if cfg.creator_boosts:
        for n, v in enumerate(cands):
            s[n] += cfg.creator_boosts.get(meta[v].creator, 0.0)
    return s


def _best(model: Model, scores: np.ndarray, k: int) -> list[str]:
    """The model's videos with the ``k`` highest positive scores."""
    k = min(k, len(model.items) - 1)
    if k < 1:
        return []
    top = np.argpartition(-scores, k)[:k]
    return model.names(top[scores[top] > 0])


def _explain(
    model: Model,
    cfg: RankingConfig,
    liked_videos: list[str],
    region: str,
    items: list[FeedItem],
    x: np.ndarray,
    known: np.ndarray,
    midx: np.ndarray,
) -> None:
    """Write "why this video" for ``items`` (feature rows ``x``): the main
    contributions to each score (exact: the score lost without the source) and
    a liked video it resembles."""
    idx = model.index_of
    liked = np.array([idx[v] for v in liked_videos if v in idx], np.int64)
    contrib = contributions(model, x, cfg.weights)
    examples = _examples(model, liked, midx)
    for row, it in enumerate(items):
        it.reasons = explain(
            contrib[row], x[row], region, example=examples[row], known=bool(known[row])
        )


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
    capped: set[str] = set()  # topics at their cap: their videos never fit again
    cap = max(1, math.ceil(cfg.topic_cap * depth))
    gap = cfg.creator_gap
    held: list[int] = []
    rest = iter(order)
    items = [meta[v] for v in cands]
    recent: list[str] = []  # the creators of the last ``gap`` places

    def fits(n: int, recent: list[str]) -> bool | None:
        """True if it fits now, False if held back by the gap, None if never."""
        it = items[n]
        if capped and not capped.isdisjoint(it.topics):
            return None
        return it.creator not in recent

    while len(chosen) < depth:
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
        if gap:
            recent.append(items[pick].creator)
            if len(recent) > gap:
                del recent[0]
        newly = False
        for t in set(items[pick].topics):
            topic_count[t] = topic_count.get(t, 0) + 1
            if topic_count[t] >= cap:
                newly = newly or t not in capped
                capped.add(t)
        if newly:
            held = [n for n in held if fits(n, []) is not None]
    return chosen


def _popular(cfg: RankingConfig, region: str, pool: Pool, catalog: Catalog, depth: int) -> Ranked:
    """The non-personalised feed: popular in the region and worldwide, nothing
    about the user but their region."""
    # the top ``depth`` of each list (deeper ones are for retrieval's unseen)
    reg = dict(pool.popular.get(region, [])[:depth])
    world = dict(pool.popular.get(WORLD, [])[:depth])
    top_r = max(reg.values(), default=0.0) or 1.0
    top_w = max(world.values(), default=0.0) or 1.0
    cands, meta, s = [], {}, []
    for v in sorted(set(reg) | set(world)):
        it = catalog.get(v, pool.catalog_seq)
        if it is None:
            continue
        cands.append(v)
        meta[v] = it
        s.append(reg.get(v, 0.0) / top_r + 0.5 * world.get(v, 0.0) / top_w)
    order = sorted(range(len(cands)), key=lambda n: (-s[n], cands[n]))
    videos = [cands[n] for n in rerank(order, cands, meta, cfg, depth)]
    in_reg = [v in reg for v in videos]
    in_world = [v in world for v in videos]
    shares = np.array(
        [
            [reg[v] / top_r if r else np.nan, 0.5 * world[v] / top_w if w else np.nan]
            for v, r, w in zip(videos, in_reg, in_world, strict=True)
        ]
    ).reshape(len(videos), 2)
    return Ranked(
        "popular",
        region,
        videos,
        [meta[v].creator for v in videos],
        np.nansum(shares, axis=1) if len(videos) else np.zeros(0),
        np.array(
            [
                _mask([n for n, ok in (("popular_region", r), ("popular_world", w)) if ok])
                for r, w in zip(in_reg, in_world, strict=True)
            ],
            np.int32,
        ),
        shares=shares,
    )


def _popular_reasons(share: np.ndarray, region: str) -> list[dict[str, Any]]:
    out = []
    if not np.isnan(share[0]):
        out.append(
            {
                "source": "region_popular",
                "text": f"Popular in your region ({region})",
                "contribution": round(float(share[0]), 6),
            }
        )
    if not np.isnan(share[1]):
        out.append(
            {
                "source": "popular",
                "text": "Popular worldwide",
                "contribution": round(float(share[1]), 6),
            }
        )
    return out
