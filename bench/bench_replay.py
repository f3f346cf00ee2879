"""Replay-audit throughput (issue 7): feeds recomputed with the approved
ranking configuration per second, on kuairec-small.

The engine is bootstrapped on the bundled kuairec-small training split; it
serves --feeds personalised feeds (users and seeds at random), then the replay
audit's work is timed: each kept feed recomputed from its recorded inputs with
the approved configuration and its digest compared with the committed one —
in one process, and in two processes (2 vCPU) each replaying half. Baseline in
the same run: serving the same feeds (a replay is a feed computation).

    .venv/bin/python bench/bench_replay.py [--feeds 4000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import time

from rich.console import Console
from rich.progress import track

from cleanroom.foryou import Engine, RankingConfig
from cleanroom.foryou.evaluate import bundled
from cleanroom.foryou.feed import items_digest

console = Console()
ENGINE: Engine | None = None


def _replay(feeds: list[str]) -> tuple[int, int]:
    assert ENGINE is not None
    approved = ENGINE.config
    matched = 0
    for f in feeds:
        record = ENGINE.record(f)
        assert record is not None
        if items_digest(ENGINE.replay(record, config=approved)) == record.list_digest:
            matched += 1
    return matched, len(feeds)


def main() -> None:
    global ENGINE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=4000)
    args = ap.parse_args()
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    splits = bundled("kuairec-small")
    ENGINE = Engine(RankingConfig.shipped())
    ENGINE.bootstrap(splits.training_set())
    rng = random.Random(3)
    users = splits.user_ids
    feeds = []
    t = time.perf_counter()
    for n in track(range(args.feeds), description="serving"):
        # the bundled data's clock starts near 0 (its states are fresh then)
        page = ENGINE.feed(rng.choice(users), limit=10, seed=f"s{n}", now_ms=1000)
        feeds.append(page.record.feed)
    serve_s = time.perf_counter() - t
    kept = [f for f in feeds if ENGINE.record(f) is not None]
    shown = sum(len(ENGINE.record(f).videos) for f in kept) / max(1, len(kept))
    t = time.perf_counter()
    matched, n = _replay(kept)
    one = time.perf_counter() - t
    half = len(kept) // 2
    with mp.get_context("fork").Pool(2) as pool:
        t = time.perf_counter()
        parts = pool.map(_replay, [kept[:half], kept[half:]])
        two = time.perf_counter() - t
    matched2 = sum(m for m, _ in parts)
    console.print(f"{len(kept)} feeds kept of {len(feeds)} served, {shown:.0f} videos ranked each")
    console.print(f"baseline, serving:       {len(feeds) / serve_s:,.0f} feeds/s (one process)")
    console.print(f"replay, one process:     {n / one:,.0f} feeds/s, {matched}/{n} match")
    console.print(
        f"replay, two processes:   {len(kept) / two:,.0f} feeds/s, {matched2}/{len(kept)} match"
    )


if __name__ == "__main__":
    main()
