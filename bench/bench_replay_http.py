"""Replay-audit throughput over HTTP (issue 7): the oversight body's whole path
— the monitor verifies the ledger, samples the served-feed commitments, asks
the clean room (POST /v1/oversight/feeds/replay, 500 feeds a request, two
requests at a time, asking again on new connections for feeds another worker
keeps) to recompute them with the approved ranking, and compares each digest
with the one committed on the ledger.

A fresh clean room (SQLite) is loaded with kuairec-small through the API
(1,411 users, 3,327 videos, ~254k engagements) as `make demo` does, then served
by `cleanroom serve --workers N` (each worker trains at start); --feeds feeds
are served over HTTP first (users at random, 8 client threads). Baseline in
the same run: serving those feeds over HTTP.

    .venv/bin/python bench/bench_replay_http.py [--feeds 4000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
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
from cleanroom.api.serving import InProcessServer
from cleanroom.gate import Principal
from cleanroom.ledger.serving import ServerProcess
from cleanroom.oversight import Watcher
from cleanroom.oversight.replay import replay_audit
from cleanroom.room import CleanRoom, datasets
from cleanroom.room.datasets import load_through_api
from cleanroom.room.setup import init_data_dir, register_principals
from common import machine

console = Console()
ORIGIN = "bench.example/log"


def _load(dd, tokens: dict[str, str]) -> None:
    with InProcessServer(dd.path) as live:
        users, videos, events = datasets.load("kuairec-small")
        asyncio.run(load_through_api(live.url, tokens["platform-app"], users, videos, events))


def _wait_trained(url: str, token: str, timeout: float = 600) -> None:
    """Until ten feeds in a row (new connections: any worker) are served."""
    deadline = time.monotonic() + timeout
    ok = 0
    while ok < 10:
        if time.monotonic() > deadline:
            sys.exit("the server's workers did not train in time")
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        r = httpx.get(url + "/v1/feed", params={"limit": 1}, timeout=60, headers=headers)
        ok = ok + 1 if r.status_code == 200 else 0
        time.sleep(0.05 if r.status_code == 200 else 1.0)


def run(dd, signer, tokens: dict[str, str], viewers: list[str], workers: int, n: int) -> None:
    server = ServerProcess(dd.path, workers=workers).wait_ready(120)
    try:
        _wait_trained(server.url, viewers[0])
        rng = random.Random(7)
        jobs = [(rng.choice(viewers), f"s{workers}-{k}") for k in range(n)]
        http = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=16))

        last = [0]

        def one(job: tuple[str, str]) -> str:
            token, seed = job
            r = http.get(server.url + "/v1/feed", params={"limit": 10, "seed": seed},
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            r.raise_for_status()
            last[0] = max(last[0], r.json()["ledger_index"])
            return r.json()["feed"]

        t = time.perf_counter()
        with Progress(transient=True) as bar, ThreadPoolExecutor(8) as pool:
            task = bar.add_task(f"serving over HTTP ({workers} workers)", total=len(jobs))
            feeds = set()
            for feed in pool.map(one, jobs):
                feeds.add(feed)
                bar.advance(task)
        serve_s = time.perf_counter() - t
        while httpx.get(server.url + "/healthz").json()["log"]["size"] <= last[0]:
            time.sleep(0.2)  # until this run's feed commitments are published
        with tempfile.TemporaryDirectory() as mon:
            watcher = Watcher(server.url + "/log/", signer.verifier, Path(mon), client=http)
            t = time.perf_counter()
            w = watcher.run_once()
            verify_s = time.perf_counter() - t
            t = time.perf_counter()
            # this run's feeds (an earlier run's, on the same ledger, are no longer kept)
            rows = [row for row in watcher.served() if row[1] in feeds]
            report, _ = replay_audit(rows, server.url, tokens["olga-oversight"], sample=n,
                                     client=http)  # fmt: skip
            replay_s = time.perf_counter() - t
        http.close()
    finally:
        server.stop()
    console.print(f"[bold]{workers} worker(s)[/]: monitor verified {w.entries_checked:,} entries "
                  f"in {verify_s:.1f} s")  # fmt: skip
    console.print(f"  baseline, serving over HTTP: {n / serve_s:,.0f} feeds/s")
    console.print(
        f"  replay audit over HTTP: {report.replayed:,} feeds in {replay_s:.2f} s = "
        f"[bold]{report.replayed / replay_s:,.0f} feeds/s[/] ({report.unavailable} not kept, "
        f"{report.mismatched} mismatched)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=4000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    console.print(f"machine: {machine()}, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        dd, signer = init_data_dir(Path(tmp) / "room", ORIGIN)
        tokens = {n: t for n, (t, _) in register_principals(dd).items()}
        _load(dd, tokens)
        viewers = []
        with CleanRoom.open(dd, start=False) as room:
            for k in range(100, 400):
                name = f"bench-viewer-{k}"
                room.principals.add(Principal(name, "user", "users", "user", "US", 0, f"u{k}"))
                viewers.append(room.principals.issue_token(name))
        for workers in args.workers:
            run(dd, signer, tokens, viewers, workers, args.feeds)


if __name__ == "__main__":
    main()
