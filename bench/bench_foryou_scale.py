"""For You engine at scale (issue 4): a synthetic catalog of 1,000,000 videos
and 1,000,000 users. Measures the time to bootstrap (user states, counters)
and train, the peak memory of the process, and the latency of a feed (p50,
p99) in the process; the same feed on kuairec-small is the baseline measured
in the same run. The HTTP layer's own cost does not depend on the catalog: it
is measured by bench_foryou.py.

The synthetic data is said to be synthetic: creators follow a Zipf law, each
video has one of 40 topics and an upload time in the last 30 days, video
popularity is Zipf, each user has a favourite topic and draws most of their
events from it (the rest from the whole catalog), and watches end as long
views, short views, skips, likes and shares in fixed proportions.

    python bench/bench_foryou_scale.py [--videos N] [--users N]
        [--events-per-user K] [--feeds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.foryou import Engine, Item, RankingConfig, TrainingSet
from cleanroom.foryou.data import CODE
from cleanroom.foryou.evaluate import bundled
from common import machine, pct

console = Console()
TOPICS = 40
DAY_MS = 86_400_000
NOW_MS = 1_790_000_000_000
KINDS = ("long_view", "short_view", "skip", "like", "share")
KIND_P = (0.35, 0.12, 0.43, 0.08, 0.02)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(videos: int, users: int, per_user: int, seed: int = 7) -> TrainingSet:
    rng = np.random.default_rng(seed)
    creators = max(1, videos // 10)
    creator = np.minimum(rng.zipf(1.3, videos), creators) - 1
    topic = rng.integers(0, TOPICS, videos)
    created = NOW_MS - rng.integers(0, 30 * DAY_MS, videos)
    # popularity rank: video n is the n-th most popular (Zipf weights)
    weight = 1.0 / np.arange(1, videos + 1) ** 0.9
    by_topic = [np.nonzero(topic == t)[0] for t in range(TOPICS)]
    topic_cdf = [np.cumsum(weight[v]) / weight[v].sum() for v in by_topic]
    world_cdf = np.cumsum(weight) / weight.sum()
    taste = rng.integers(0, TOPICS, users)
    n = users * per_user
    u = np.repeat(np.arange(users, dtype=np.int32), per_user)
    i = np.empty(n, np.int32)
    from_taste = rng.random(n) < 0.7
    draw = rng.random(n)
    i[~from_taste] = np.searchsorted(world_cdf, draw[~from_taste])
    for t in range(TOPICS):
        rows = np.nonzero(from_taste & (taste[u] == t))[0]
        i[rows] = by_topic[t][
            np.minimum(np.searchsorted(topic_cdf[t], draw[rows]), len(by_topic[t]) - 1)
        ]
    i = np.minimum(i, videos - 1)
    kind = rng.choice(len(KINDS), n, p=KIND_P)
    code = np.array([CODE[k] for k in KINDS], np.int8)[kind]
    ts = NOW_MS - 7 * DAY_MS + np.sort(rng.integers(0, 7 * DAY_MS, n)).astype(np.int64)
    ts = ts[np.argsort(rng.permutation(n))]  # users interleave in time
    ids = [f"v{n:07d}" for n in range(videos)]
    names = [f"u{n:07d}" for n in range(users)]
    creator_ids = [f"c{n:06d}" for n in range(creators)]
    topic_ids = [(f"topic-{t:02d}",) for t in range(TOPICS)]
    catalog = {
        ids[k]: Item(ids[k], creator_ids[creator[k]], topic_ids[topic[k]], "US", int(created[k]))
        for k in range(videos)
    }
    regions = dict.fromkeys(names, "US")
    return TrainingSet(
        names,
        ids,
        u,
        i,
        code,
        ts,
        catalog,
        regions,
        ("synthetic: Zipf creators and popularity, 40 topics, one favourite topic per user",),
    )


def feed_latency(engine: Engine, users: list[str], now_ms: int, mode: str | None = None) -> dict:
    lat = []
    for n, u in enumerate(users):
        t0 = time.perf_counter()
        engine.feed(u, limit=20, seed=f"s{n}", now_ms=now_ms, mode=mode)
        lat.append(time.perf_counter() - t0)
    return {
        "feeds": len(lat),
        "p50_ms": round(1000 * pct(lat, 50), 3),
        "p99_ms": round(1000 * pct(lat, 99), 3),
        "per_s_one_thread": round(len(lat) / sum(lat), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events-per-user", type=int, default=8)
    ap.add_argument("--feeds", type=int, default=3000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report: dict = {
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "videos": args.videos,
        "users": args.users,
        "events": args.users * args.events_per_user,
    }

    # baseline in the same run: the bundled kuairec-small catalog
    small = Engine(RankingConfig.shipped())
    splits = bundled("kuairec-small")
    small.bootstrap(splits.training_set())
    report["baseline_kuairec_small"] = feed_latency(small, splits.user_ids[: args.feeds], 1000)
    del small, splits
    report["rss_before_mb"] = round(rss_mb(), 1)

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("synthesising the catalog and events", total=None)
        t0 = time.perf_counter()
        data = synthetic(args.videos, args.users, args.events_per_user)
        report["synthesis_seconds"] = round(time.perf_counter() - t0, 1)
        bar.update(task, description="bootstrapping: states and counters")
        engine = Engine(RankingConfig.shipped())
        t0 = time.perf_counter()
        engine.bootstrap(data, train=False)
        report["bootstrap_seconds"] = round(time.perf_counter() - t0, 1)
        report["rss_after_bootstrap_mb"] = round(rss_mb(), 1)
        bar.update(task, description="training")
        t0 = time.perf_counter()
        engine.train(data)
        report["train_seconds"] = round(time.perf_counter() - t0, 1)
    report["users_with_state"] = len(engine.states)
    report["rss_after_training_mb"] = round(rss_mb(), 1)
    now = NOW_MS + 60_000
    rng = np.random.default_rng(1)
    sample = [data.users[k] for k in rng.integers(0, len(data.users), args.feeds)]
    del data
    report["personalized"] = feed_latency(engine, sample, now)
    report["popular"] = feed_latency(engine, sample[:500], now, mode="popular")
    report["peak_rss_mb"] = round(peak_mb(), 1)
    report["model"] = {
        k: v for k, v in engine.model.describe().items() if k in ("version", "items", "users")
    }
    console.print_json(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
