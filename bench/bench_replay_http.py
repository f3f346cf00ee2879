"""Replay-audit throughput over HTTP (issue 7): the oversight body's whole path
— the monitor verifies the ledger, samples the served-feed commitments, asks
the clean room (POST /v1/oversight/feeds/replay, 500 feeds a request) to
recompute them with the approved ranking, and compares each digest with the
one committed on the ledger.

A fresh clean room (SQLite) is loaded with kuairec-small through the API
(1,411 users, 3,327 videos, ~250k engagements) as `make demo` does, trained,
and served in this process by uvicorn; --feeds feeds are served over HTTP
first (users at random, 8 client threads). Baseline in the same run: serving
those feeds over HTTP.

    .venv/bin/python bench/bench_replay_http.py [--feeds 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom import datasets, demo
from cleanroom.demo import InProcessServer
from cleanroom.errors import CleanroomError
from cleanroom.gate import Principal
from cleanroom.oversight import Watcher
from common import machine

console = Console()
ORIGIN = "bench.example/log"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=4000)
    ap.add_argument("--profile", action="store_true", help="profile the in-process replays")
    args = ap.parse_args()
    console.print(f"machine: {machine()}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        dd, signer = demo.init_data_dir(Path(tmp) / "room", ORIGIN)
        demo_tokens = {n: t for n, (t, _) in demo._principals(dd).items()}
        with InProcessServer(dd.path) as live:
            users, videos, events = datasets.load("kuairec-small")
            asyncio.run(demo._load(live.url, demo_tokens["platform-app"], users, videos, events))
            rec = live.app.state.recommender
            with contextlib.suppress(CleanroomError):  # one may run already
                rec.retrain()
            while (rec.trained or {}).get("records", 0) < 200_000 or rec.engine.training:
                time.sleep(0.5)
            console.print(f"trained on {rec.trained['records']:,} engagements")
            room = live.app.state.room
            tokens = {}
            for k in range(100, 400):
                name = f"bench-viewer-{k}"
                room.principals.add(Principal(name, "user", "users", "user", "US", 0, f"u{k}"))
                tokens[name] = room.principals.issue_token(name)
            olga = demo_tokens["olga-oversight"]
            rng = random.Random(7)
            jobs = [(rng.choice(list(tokens.values())), f"s{n}") for n in range(args.feeds)]
            http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=16))

            def one(job: tuple[str, str]) -> None:
                token, seed = job
                r = http.get(live.url + "/v1/feed", params={"limit": 10, "seed": seed},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                r.raise_for_status()

            t = time.perf_counter()
            with Progress(transient=True) as bar, ThreadPoolExecutor(8) as pool:
                task = bar.add_task("serving over HTTP", total=len(jobs))
                for _ in pool.map(one, jobs):
                    bar.advance(task)
            serve_s = time.perf_counter() - t
            room.log.integrate()
            vkey = signer.verifier
            watcher = Watcher(live.url + "/log/", vkey, Path(tmp) / "mon", client=http)
            t = time.perf_counter()
            w = watcher.run_once()
            verify_s = time.perf_counter() - t
            t = time.perf_counter()
            report, _ = watcher.replay(live.url, olga, sample=args.feeds, client=http)
            replay_s = time.perf_counter() - t
            http.close()
            # the same replays in the server's process, without HTTP
            engine = rec.engine
            approved = live.app.state.approved_ranking
            records = [r for r in (engine.record(row[1]) for row in watcher._engine().served) if r]
            profiler = None
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler()
                profiler.start()
            t = time.perf_counter()
            for r in records:
                engine.replay(r, config=approved)
            direct_s = time.perf_counter() - t
            if profiler is not None:
                profiler.stop()
                console.print(profiler.output_text(show_all=False, color=False))
    console.print(
        f"ledger verified by the monitor: {w.entries_checked:,} entries in {verify_s:.1f} s"
    )
    console.print(f"baseline, serving over HTTP: {args.feeds / serve_s:,.0f} feeds/s")
    console.print(
        f"baseline, the same replays in-process (no HTTP): {len(records) / direct_s:,.0f} feeds/s"
    )
    console.print(
        f"replay audit over HTTP: {report.replayed:,} feeds in {replay_s:.2f} s = "
        f"[bold]{report.replayed / replay_s:,.0f} feeds/s[/] ({report.unavailable} no longer "
        f"kept, {report.mismatched} mismatched)"
    )


if __name__ == "__main__":
    main()
