"""Does the For You engine learn a new viewer? (issue 18) Two measures on a
bundled data set loaded as the clean room loads it (synthesized times):

- **Personas** (the sock-puppet audit without HTTP): one persona per derived
  topic watches its topic's videos to the end (and likes them) and skips the
  rest, page after page of the personalised feed; its events go to the engine
  as a user's would. Reported: the topic's share of each page (videos 41-50
  and 91-100 are the goal's figures), what is shown outside the topic
  (exploration), against a random draw (the topic's share of the catalogue)
  and the non-personalised feed, both in the same run.
- **Cold start on real viewers**: users held out of training, each given 50
  of their own events (a random draw of them); their feed's first 20 items
  against their other positive engagements (NDCG@20 and recall@20), beside
  popularity over the same candidates. It says whether the data itself lets
  50 events predict a viewer's other likes better than popularity does.

``--dataset synthetic`` is a generated catalogue whose videos carry topic
tags (a fixed list of everyday content categories) and whose viewers have
known tastes: each likes one to three tags, and a video's chance of being
watched to the end rises with the viewer's taste for its tag and with the
video's quality. Its personas are the catalogue's own tags, not derived
communities. Synthetic, and said so in every output.

    python bench/bench_personas.py [--dataset kuairec-small|kuairand-small|synthetic]
        [--personas 5] [--pages 12] [--holdout 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.audit.puppets import personas
from cleanroom.foryou import Engine, RankingConfig
from cleanroom.foryou.data import ENGAGEMENTS, POSITIVE_CODES, Item, TrainingSet
from cleanroom.foryou.online import Observed
from cleanroom.room import datasets
from cleanroom.room.recommender import topic_map
from common import machine

console = Console()
HOUR_MS = 3_600_000
K = 20


TAGS = (
    "comedy", "cooking", "sports", "music", "gaming", "beauty", "pets", "travel", "education",
    "dance", "fitness", "fashion", "tech", "diy", "cars", "news", "art", "parenting", "nature",
    "film",
)  # fmt: skip
SYNTHETIC = "synthetic: generated videos with topic tags and viewers of known tastes"


def synthetic(
    seed: int = 0, videos: int = 3000, users: int = 1500, shown: int = 120
) -> TrainingSet:
    """A tagged catalogue and viewers of known tastes (see the module's doc).
    Tags are Zipf-sized; each viewer is shown ``shown`` videos, half drawn by
    popularity (quality) and half at random, and watches a video to the end
    with probability sigmoid(3·taste[tag] + quality − 2.5), else skips it."""
    rng = np.random.default_rng(seed)
    t0 = datasets.EPOCH_MS
    weights = 1.0 / np.arange(1, len(TAGS) + 1)
    tag = rng.choice(len(TAGS), videos, p=weights / weights.sum())
    quality = rng.normal(0.0, 1.0, videos)
    catalog = [
        Item(f"s{v}", f"creator-{v % 300}", (TAGS[tag[v]],), created_ms=t0 - 86_400_000)
        for v in range(videos)
    ]
    pop = np.exp(quality) / np.exp(quality).sum()
    rows = []
    for u in range(users):
        taste = np.zeros(len(TAGS))
        likes = rng.choice(len(TAGS), rng.integers(1, 4), replace=False, p=weights / weights.sum())
        taste[likes] = rng.dirichlet(np.ones(len(likes)))
        taste = taste / taste.max()
        seen = np.unique(
            np.concatenate([rng.choice(videos, shown // 2, p=pop), rng.choice(videos, shown // 2)])
        )
        p = 1.0 / (1.0 + np.exp(-(3.0 * taste[tag[seen]] + quality[seen] - 2.5)))
        watched = rng.random(len(seen)) < p
        for k, (v, w) in enumerate(zip(seen, watched, strict=True)):
            kind, ms = ("view", 30_000) if w else ("skip", 1_000)
            rows.append((f"u{u}", f"s{v}", kind, t0 + k * datasets.STEP_MS, ms))
    return TrainingSet.from_rows(rows, catalog, derived=(SYNTHETIC,))


def load(name: str) -> TrainingSet:
    """The data set as the clean room holds it (bundled users, videos, events),
    or the synthetic tagged one."""
    if name == "synthetic":
        return synthetic()
    _, videos, events = datasets.load(name)
    catalog = [Item(v.id, v.creator, created_ms=v.created_ms) for v in videos]
    rows = ((e.user, e.video, e.kind, e.ts_ms, e.watch_ms) for e in events)
    return TrainingSet.from_rows(rows, catalog, derived=(datasets.describe(),))


def run_personas(data: TrainingSet, n: int, pages: int, progress: Progress) -> dict:
    now = [int(data.ts.max()) + HOUR_MS]
    engine = Engine(RankingConfig.shipped(), clock=lambda: now[0] / 1000)
    t = time.perf_counter()
    engine.bootstrap(data)
    train_s = time.perf_counter() - t
    topics = topic_map(data)
    sizes = Counter(topics.topics.values())
    cast = personas(topics, n)
    task = progress.add_task("personas", total=len(cast) * pages)
    rows = []
    for k, persona in enumerate(cast):
        user, topic = f"persona-{k}", next(iter(persona.interests))
        shares = []
        for page in range(pages):
            now[0] += 60_000
            feed = engine.feed(user, limit=10, seed=f"persona-{user}-{page}", mode="personalized")
            events = []
            for j, item in enumerate(feed.items):
                kind, watch, liked = persona.reacts(topics.of(item.video))
                events.append(Observed(user, item.video, kind, now[0] + j, watch))
                if liked:
                    events.append(Observed(user, item.video, "like", now[0] + j))
            engine.observe(events)
            shares.append(sum(topics.of(i.video) == topic for i in feed.items) / len(feed.items))
            progress.advance(task)
        popular = engine.feed(user, limit=100, mode="popular", seed="persona").items
        rows.append(
            {
                "persona": persona.name,
                "curve": [round(s, 3) for s in shares],
                "after_40": shares[4],
                "after_90": shares[9] if pages >= 10 else None,
                "outside_topic": 1.0 - float(np.mean(shares)),
                "random": sizes[topic] / max(1, len(topics.topics)),
                "non_personalised": sum(topics.of(i.video) == topic for i in popular)
                / max(1, len(popular)),
            }
        )
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {
        "topics": topics.source,
        "train_seconds": round(train_s, 1),
        "chosen": engine.model.tuning.get("chosen"),
        "personas": rows,
        "videos_41_50": mean("after_40"),
        "videos_91_100": mean("after_90") if pages >= 10 else None,
        "outside_topic": mean("outside_topic"),
        "random": mean("random"),
        "non_personalised": mean("non_personalised"),
    }


def run_cold_start(data: TrainingSet, holdout: int, first: int, progress: Progress) -> dict:
    per_user = np.bincount(data.u, minlength=len(data.users))
    rng = np.random.default_rng(0)
    eligible = np.nonzero(per_user >= first + 20)[0]
    held = np.sort(rng.choice(eligible, min(holdout, len(eligible)), replace=False))
    names = {data.users[u] for u in held}
    now = int(data.ts.max()) + HOUR_MS
    engine = Engine(RankingConfig.shipped(), clock=lambda: now / 1000)
    training = data.without(names)
    engine.bootstrap(training)
    # popularity from the same training data (the held-out viewers' own likes
    # are what is scored: they must not count)
    liked = training.i[POSITIVE_CODES[training.code]]
    by_popularity = np.argsort(-np.bincount(liked, minlength=len(data.items)), kind="stable")
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    ours, popular, recall_ours, recall_pop = [], [], [], []
    task = progress.add_task("cold start", total=len(held))
    for u in held:
        rows = np.nonzero(data.u == u)[0]
        given = np.random.default_rng(int(u)).permutation(rows)[:first]
        user = data.users[u]
        engine.observe(
            Observed(user, data.items[data.i[r]], ENGAGEMENTS[data.code[r]], int(data.ts[r]), 0)
            for r in given
        )
        shown = {data.items[data.i[r]] for r in given}
        truth = {data.items[data.i[r]] for r in rows if POSITIVE_CODES[data.code[r]]} - shown
        progress.advance(task)
        if not truth:
            continue
        feed = [i.video for i in engine.feed(user, limit=K, seed="cold", mode="personalized").items]
        # popularity over the same candidates: every video the user was not given
        top_pop = list(islice((v for j in by_popularity if (v := data.items[j]) not in shown), K))
        ideal = disc[: min(len(truth), K)].sum()
        for top, nd, rc in ((feed, ours, recall_ours), (top_pop, popular, recall_pop)):
            hits = np.array([v in truth for v in top] + [False] * (K - len(top)))
            nd.append(float((hits * disc).sum() / ideal))
            rc.append(float(hits.sum() / len(truth)))
    return {
        "users": len(ours),
        "events_given": first,
        "ours": {"ndcg@20": float(np.mean(ours)), "recall@20": float(np.mean(recall_ours))},
        "popularity": {
            "ndcg@20": float(np.mean(popular)),
            "recall@20": float(np.mean(recall_pop)),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="kuairec-small", choices=(*datasets.DATASETS, "synthetic"))
    ap.add_argument("--personas", type=int, default=5)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--holdout", type=int, default=300)
    ap.add_argument("--first", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.personas < 1 or args.pages < 5 or args.holdout < 1 or args.first < 1:
        ap.error("--personas, --holdout and --first are at least 1, --pages at least 5")
    data = load(args.dataset)
    with Progress(console=console) as progress:
        persona = run_personas(data, args.personas, args.pages, progress)
        cold = run_cold_start(data, args.holdout, args.first, progress)
    t = Table(title=f"Personas on {args.dataset} ({persona['topics']})")
    for col in ("persona", "videos 41-50", "videos 91-100", "outside topic", "random",
                "non-personalised"):  # fmt: skip
        t.add_column(col)
    for r in persona["personas"]:
        t.add_row(
            r["persona"],
            f"{r['after_40']:.0%}",
            "—" if r["after_90"] is None else f"{r['after_90']:.0%}",
            f"{r['outside_topic']:.0%}",
            f"{r['random']:.1%}",
            f"{r['non_personalised']:.0%}",
        )
    console.print(t)
    console.print(
        f"mean: videos 41-50 {persona['videos_41_50']:.0%}, 91-100 "
        f"{persona['videos_91_100'] or 0:.0%}; random {persona['random']:.1%}, "
        f"non-personalised {persona['non_personalised']:.0%}"
    )
    console.print(
        f"cold start ({cold['users']} held-out viewers, {cold['events_given']} events each): "
        f"ours NDCG@20 {cold['ours']['ndcg@20']:.4f} R@20 {cold['ours']['recall@20']:.4f}; "
        f"popularity {cold['popularity']['ndcg@20']:.4f} / {cold['popularity']['recall@20']:.4f}"
    )
    if args.json:
        report = {
            "machine": machine(),
            "date": datetime.now(UTC).date().isoformat(),
            "dataset": args.dataset,
            "personas": persona,
            "cold_start": cold,
        }
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
