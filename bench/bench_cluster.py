"""The clean room on 1, 2 and 3 nodes against one process (issue 17).

One PostgreSQL database (a schema of its own) holds kuairec-small (1,411
users, 3,327 videos, ~254k events); each configuration serves it with fresh
``cleanroom serve`` processes on this machine:

- ``single process``: today's embedded layout (each process its own online
  state), the baseline, on the same database;
- ``1/2/3 nodes``: nodes sharing Redis (online state) and NATS JetStream (the
  bus); requests go to the nodes in turn (a round-robin balancer).

For each: the highest offered rate of personalised feeds whose p99 stays
within 25 ms (open loop, steps of 25/s), ingest events/s (batches of 100,
four clients), and the work per CPU-second at a fixed load — feeds and
events per second of CPU spent by everything on the server side (nodes,
PostgreSQL, Redis, NATS: the machine's busy time less the load generator's),
against the single process in the same run. With several nodes: freshness
(an event stored through node A, the first feed from node B that reflects
it), deletion (a user deletes themselves through A; until their token is
refused by B and C and their state is gone from Redis) and the replay audit
of 4,000 feeds the three nodes served.

    .venv/bin/python bench/bench_cluster.py [--seconds 5] [--feeds 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.gate import Principal
from cleanroom.ledger.note import generate_signer
from cleanroom.ledger.serving import ServerProcess
from cleanroom.ledger.store import LedgerStore
from cleanroom.oversight import Watcher
from cleanroom.oversight.replay import replay_audit
from cleanroom.room import CleanRoom, datasets
from cleanroom.room.config import Config, DataDir
from cleanroom.room.setup import register_principals
from cleanroom.room.sync import drop_shared, shared_name
from common import database, load_into_vault, machine, pct
from loadgen import open_loop_many

console = Console()
ORIGIN = "bench.example/log"
REDIS = os.environ.get("CLEANROOM_BENCH_REDIS", "redis://127.0.0.1:6379/15")
NATS = os.environ.get("CLEANROOM_BENCH_NATS", "nats://127.0.0.1:4222")
VIEWERS, LEAVERS, LEAVERS_PER_RUN = 300, 60, 30
TICK = os.sysconf("SC_CLK_TCK")


# -- the clean room ----------------------------------------------------------------------


class Setup:
    def __init__(self, root: Path, db_url: str) -> None:
        self.dd = DataDir(root / "room")
        self.dd.save(Config(origin=ORIGIN, database_url=db_url))
        self.signer = generate_signer(ORIGIN)
        self.dd.write_key("log", self.signer)
        db = self.dd.database()
        LedgerStore(db, ORIGIN, self.signer).init()
        db.dispose()
        self.tokens = {n: t for n, (t, _) in register_principals(self.dd).items()}
        users, videos, events = datasets.load("kuairec-small")
        self.videos = [v.id for v in videos]
        self.viewers: list[tuple[str, str]] = []  # (user, token)
        self.leavers: list[tuple[str, str]] = []  # users who delete themselves
        with CleanRoom.open(self.dd, background=False) as room:
            app = room.system("platform-app")
            load_into_vault(room, app, users, videos, events, console)
            for k, u in enumerate(users[: VIEWERS + LEAVERS]):
                name = f"viewer-{u.id}"
                room.principals.add(Principal(name, "user", "users", "user", "US", 0, u.id))
                (self.viewers if k < VIEWERS else self.leavers).append(
                    (u.id, room.principals.issue_token(name))
                )
        self.batch = 0

    def configure(self, clustered: bool) -> None:
        config = self.dd.load()
        config.state_url = REDIS if clustered else None
        config.bus_url = NATS if clustered else None
        self.dd.save(config)
        if clustered:
            reset_shared(self.dd.database_url())

    def events(self, n: int) -> list[dict]:
        self.batch += 1
        rng = random.Random(self.batch)
        now = int(time.time() * 1000)
        return [
            {
                "id": f"b{self.batch}-{i}",
                "user": rng.choice(self.viewers)[0],
                "video": rng.choice(self.videos),
                "kind": "view",
                "ts_ms": now + i,
                "watch_ms": rng.choice([800, 4_000, 25_000]),
            }
            for i in range(n)
        ]


def reset_shared(db_url: str) -> None:
    """A clean start in Redis and NATS for this clean room (its keys, its stream)."""
    drop_shared(db_url, REDIS, NATS)


def vacuum(db_url: str) -> None:
    """VACUUM ANALYZE after the load (else autovacuum runs during the first measurements)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def start_nodes(s: Setup, n: int, clustered: bool) -> list[ServerProcess]:
    """The nodes (the first trains; the others load its model by digest)."""
    nodes: list[ServerProcess] = []
    for k in range(n):
        node = ServerProcess(s.dd.path, node=f"n{k}" if clustered else None).wait_ready(120)
        nodes.append(node)
        deadline = time.monotonic() + 600
        while not httpx.get(node.url + "/healthz", timeout=10).json().get("model"):
            if time.monotonic() > deadline:
                sys.exit(f"node {k} has no model: {node.log_path.read_text()[-2000:]}")
            time.sleep(0.5)
    return nodes


# -- measuring ---------------------------------------------------------------------------


def busy_seconds() -> float:
    """CPU time the whole machine spent (every core, not idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


SERVICES = ("postgres:", "redis-server", "nats-server")
NODE_PIDS: list[int] = []  # the nodes running now


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process so far: all its threads, the
    ones that have ended included (the thread group's counts in /proc/PID/stat;
    summing /proc/PID/task/* would lose an ended thread's time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def server_processes() -> list[int]:
    """The nodes, and PostgreSQL's, Redis's and NATS's processes."""
    out = list(NODE_PIDS)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if any(s.encode() in cmd for s in SERVICES):
                out.append(int(pid))
    return out


def _cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # (gone)
            out[pid] = _process_cpu(pid)
    return out


class ServerCpu:
    """CPU seconds the server side spent during a block: the nodes and the
    services' processes (PostgreSQL backends, Redis, NATS), from /proc; the
    load generator and the kernel's loopback work are not counted."""

    def __enter__(self) -> ServerCpu:
        self.before = _cpu_of(server_processes())
        return self

    def __exit__(self, *exc: object) -> None:
        after = _cpu_of(server_processes())
        self.seconds = sum(after[p] - self.before.get(p, 0.0) for p in after)


def quiet(limit: float = 0.15, window: float = 3.0, timeout: float = 120.0) -> float:
    """Until the machine is idle (busy less than ``limit`` of its cores over
    ``window`` seconds: a node's background work after its start, PostgreSQL's
    autovacuum after the load); the seconds waited."""
    t = time.monotonic()
    cores = os.cpu_count() or 1
    while time.monotonic() - t < timeout:
        b = busy_seconds()
        time.sleep(window)
        if (busy_seconds() - b) / (window * cores) < limit:
            break
    return round(time.monotonic() - t, 1)


def feed_paths(s: Setup) -> list[tuple[str, str]]:
    rng = random.Random(3)
    viewers = list(s.viewers)
    rng.shuffle(viewers)
    return [("/v1/feed?limit=20", t) for _, t in viewers]


def sweep(urls: list[str], paths: list[tuple[str, str]], seconds: float) -> dict:
    """The highest offered rate (steps of 25/s) with p99 within 25 ms."""
    steps = []
    for k in range(1, 24):
        r = open_loop_many(urls, paths, 25 * k, seconds).summary()
        steps.append({"offered_per_s": 25 * k, **r})
        console.print(f"    {25 * k}/s offered: p99 {r['p99_ms']} ms, errors {r['errors']}")
        if r["p99_ms"] > 100 or r["errors"]:
            break
    within = [x["offered_per_s"] for x in steps if x["p99_ms"] <= 25 and not x["errors"]]
    return {"max_feeds_per_s_p99_25ms": max(within, default=0), "steps": steps}


def feeds_per_cpu(urls: list[str], paths: list[tuple[str, str]], rate: float, secs: float) -> dict:
    with ServerCpu() as cpu:
        r = open_loop_many(urls, paths, rate, secs).summary()
    ok = r["requests"] - r["errors"]
    return {"rate": rate, "p99_ms": r["p99_ms"], "server_cpu_s": round(cpu.seconds, 2),
            "feeds_per_cpu_s": round(ok / cpu.seconds, 1)}  # fmt: skip


def ingest(s: Setup, urls: list[str], seconds: float, clients: int = 4, size: int = 100) -> dict:
    """Batches of ``size`` events from ``clients`` clients, to the nodes in turn."""
    app = {"Authorization": f"Bearer {s.tokens['platform-app']}"}

    async def run() -> tuple[int, list[float]]:
        stored, lat = 0, []
        stop = time.perf_counter() + seconds

        async def client(k: int) -> None:
            nonlocal stored
            async with httpx.AsyncClient(timeout=60, headers=app) as c:
                n = k
                while time.perf_counter() < stop:
                    url = urls[n % len(urls)]
                    n += clients
                    t = time.perf_counter()
                    r = await c.post(url + "/v1/events", json={"events": s.events(size)})
                    r.raise_for_status()
                    lat.append(time.perf_counter() - t)
                    stored += r.json()["stored"]

        await asyncio.gather(*(client(k) for k in range(clients)))
        return stored, lat

    with ServerCpu() as cpu:
        t = time.perf_counter()
        stored, lat = asyncio.run(run())
        took = time.perf_counter() - t
    return {
        "events_per_s": round(stored / took),
        "batch_p99_ms": round(1000 * pct(lat, 99), 1),
        "server_cpu_s": round(cpu.seconds, 2),
        "events_per_cpu_s": round(stored / cpu.seconds),
    }


def freshness(s: Setup, a: str, b: str, trials: int) -> dict:
    """An event acknowledged by node ``a`` (the top video marked not
    interested) until the first feed from node ``b`` without that video."""
    out = []
    app = {"Authorization": f"Bearer {s.tokens['platform-app']}"}
    with httpx.Client(timeout=30) as c:
        for k, (user, token) in enumerate(s.viewers[:trials]):
            h = {"Authorization": f"Bearer {token}"}
            top = c.get(b + "/v1/feed", params={"limit": 1}, headers=h).json()["items"][0]
            ev = {
                "id": f"fresh-{time.monotonic_ns()}-{k}",
                "user": user,
                "video": top["video"],
                "kind": "not_interested",
                "ts_ms": int(time.time() * 1000),
                "watch_ms": 0,
            }
            c.post(a + "/v1/events", json={"events": [ev]}, headers=app).raise_for_status()
            acked = time.perf_counter()
            while True:
                items = c.get(b + "/v1/feed", params={"limit": 20}, headers=h).json()["items"]
                if top["video"] not in [i["video"] for i in items]:
                    break
            out.append(time.perf_counter() - acked)
    return _pcts(out)


def deletion(s: Setup, nodes: list[str]) -> dict:
    """A user deletes themselves through the first node: until their token is
    refused by every other node and their state is gone from Redis."""
    a, others = nodes[0], nodes[1:]
    leavers, s.leavers = s.leavers[:LEAVERS_PER_RUN], s.leavers[LEAVERS_PER_RUN:]
    prefix = f"cleanroom:{shared_name(s.dd.database_url())}:st:"
    client = redis.Redis.from_url(REDIS)
    out = []
    with httpx.Client(timeout=30) as c:
        for user, token in leavers:
            h = {"Authorization": f"Bearer {token}"}
            for url in nodes:  # the token verified (and remembered) by every node
                c.get(url + "/v1/feed", params={"limit": 1}, headers=h).raise_for_status()
            assert client.exists(prefix + user)
            r = c.delete(a + "/v1/me", headers=h)
            assert r.status_code == 200, r.text
            done = time.perf_counter()
            pending = set(others)
            while pending or client.exists(prefix + user):
                for url in list(pending):
                    if c.get(url + "/v1/feed", params={"limit": 1}, headers=h).status_code == 401:
                        pending.discard(url)
            out.append(time.perf_counter() - done)
    client.close()
    return _pcts(out)


def replay(s: Setup, urls: list[str], n: int) -> dict:
    """Serve ``n`` feeds over the nodes in turn, then the oversight body's
    replay audit of them through the first node."""
    rng = random.Random(11)
    jobs = [(urls[k % len(urls)], rng.choice(s.viewers)[1], f"r{k}") for k in range(n)]
    http = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=16))
    last = [0]

    def one(job: tuple[str, str, str]) -> str:
        url, token, seed = job
        r = http.get(url + "/v1/feed", params={"limit": 10, "seed": seed},
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        r.raise_for_status()
        last[0] = max(last[0], r.json()["ledger_index"])
        return r.json()["feed"]

    with Progress(console=console, transient=True) as bar, ThreadPoolExecutor(8) as pool:
        task = bar.add_task(f"serving {n:,} feeds over {len(urls)} nodes", total=n)
        feeds = set()
        for feed in pool.map(one, jobs):
            feeds.add(feed)
            bar.advance(task)
    while httpx.get(urls[0] + "/healthz").json()["log"]["size"] <= last[0]:
        time.sleep(0.2)
    with tempfile.TemporaryDirectory() as mon:
        watcher = Watcher(urls[0] + "/log/", s.signer.verifier, Path(mon), client=http)
        watcher.run_once()
        rows = [row for row in watcher.served() if row[1] in feeds]
        t = time.perf_counter()
        report, alerts = replay_audit(rows, urls[0], s.tokens["olga-oversight"], sample=n,
                                      client=http)  # fmt: skip
        took = time.perf_counter() - t
    http.close()
    return {
        "served": len(feeds),
        "on_ledger": len(rows),
        "replayed": report.replayed,
        "unavailable": report.unavailable,
        "mismatched": report.mismatched,
        "alerts": len(alerts),
        "feeds_per_s": round(report.replayed / took),
    }


def _pcts(values: list[float]) -> dict:
    return {
        "trials": len(values),
        "p50_ms": round(1000 * pct(values, 50), 1),
        "p99_ms": round(1000 * pct(values, 99), 1),
        "max_ms": round(1000 * max(values), 1),
    }


# -- the run -----------------------------------------------------------------------------


def run(s: Setup, label: str, n: int, clustered: bool, args: argparse.Namespace) -> dict:
    console.rule(label)
    s.configure(clustered)
    nodes = start_nodes(s, n, clustered)
    NODE_PIDS[:] = [x.proc.pid for x in nodes]
    urls = [x.url for x in nodes]
    out: dict = {"config": label, "nodes": n, "clustered": clustered}
    try:
        paths = feed_paths(s)
        out["waited_for_quiet_s"] = quiet()
        open_loop_many(urls, paths, 50, len(paths) / 50)  # warm-up: every user's state
        quiet()
        out["fixed_load"] = feeds_per_cpu(urls, paths, args.rate, args.seconds * 4)
        quiet()
        out["sweep"] = sweep(urls, paths, args.seconds)
        quiet()
        out["ingest"] = ingest(s, urls, args.seconds * 2)
        quiet()
        if n > 1:
            out["freshness_a_to_b"] = freshness(s, urls[0], urls[1], args.trials)
            out["deletion"] = deletion(s, urls)
        else:
            out["freshness_same_node"] = freshness(s, urls[0], urls[0], args.trials)
        if n == 3:
            out["replay"] = replay(s, urls, args.feeds)
    except Exception:
        for x in nodes:
            console.print(x.log_path.read_text()[-3000:])
        raise
    finally:
        for x in nodes:
            x.stop()
    console.print(json.dumps({k: v for k, v in out.items() if k != "sweep"}, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="per sweep step")
    ap.add_argument("--rate", type=float, default=40.0, help="feeds/s of the fixed load")
    ap.add_argument("--trials", type=int, default=100, help="freshness trials")
    ap.add_argument("--feeds", type=int, default=4000, help="feeds served for the replay")
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    console.print(f"machine: {machine()}, {time.strftime('%Y-%m-%d')}")
    with ExitStack() as stack:
        db_url = stack.enter_context(database("postgresql"))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        t = time.perf_counter()
        s = Setup(tmp, db_url)
        console.print(f"kuairec-small loaded into PostgreSQL in {time.perf_counter() - t:.0f} s")
        vacuum(db_url)
        results = [run(s, "single process (baseline)", 1, False, args)]
        results += [run(s, f"{n} node{'s' * (n > 1)}", n, True, args) for n in args.nodes]
        # the baseline again (the machine's state drifts over a run): the better counts
        again = run(s, "single process (again)", 1, False, args)
        results.append(again)
    base = max(
        (r for r in results if not r["clustered"]), key=lambda r: r["fixed_load"]["feeds_per_cpu_s"]
    )
    base_ingest = max(r["ingest"]["events_per_cpu_s"] for r in results if not r["clustered"])
    table = Table(title="the clean room on nodes (PostgreSQL + Redis + NATS) vs one process")
    for col in ("config", "feeds/s p99≤25ms", "feeds per CPU-s", "vs 1 process",
                "ingest ev/s", "events per CPU-s", "vs 1 process"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        f, i = r["fixed_load"]["feeds_per_cpu_s"], r["ingest"]["events_per_cpu_s"]
        table.add_row(
            r["config"],
            str(r["sweep"]["max_feeds_per_s_p99_25ms"]),
            f"{f:,.0f}",
            f"{f / base['fixed_load']['feeds_per_cpu_s']:.0%}",
            f"{r['ingest']['events_per_s']:,}",
            f"{i:,}",
            f"{i / base_ingest:.0%}",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
