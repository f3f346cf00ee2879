"""Ledger benchmarks (issue 2): bulk and HTTP append throughput, append-to-checkpoint
latency, inclusion proofs at 1,000,000 entries. Each section prints its figures
and the baseline measured in the same run.

    .venv/bin/python bench/bench_ledger.py [--db sqlite,postgresql] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.ledger import MemoryTree, proofs
from cleanroom.ledger.checkpoint import parse_checkpoint
from cleanroom.ledger.entries import encode_entry
from cleanroom.ledger.hashing import leaf_hash
from cleanroom.ledger.log import Log
from cleanroom.ledger.note import generate_signer, parse_note
from cleanroom.ledger.serving import ServerProcess
from cleanroom.ledger.store import LedgerStore
from cleanroom.room import issue_token
from cleanroom.room.config import Config, DataDir
from cleanroom.storage import Database
from common import database, entry, machine, median, pct, pg_available

console = Console()
ORIGIN = "bench.example/log"
SIGNER = generate_signer(ORIGIN)
RESULTS: dict[str, object] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}


# --------------------------------------------------------------------------- bulk


def bench_bulk(kind: str, n: int, runs: int) -> None:
    entries = [entry(i) for i in range(n)]
    rates = []
    for _ in range(runs):
        with database(kind) as url:
            db = Database(url)
            log = Log(db, ORIGIN, SIGNER).start(background=False)
            t0 = time.perf_counter()
            bodies = [encode_entry(e) for e in entries]
            log.append_many(bodies)
            log.integrate()  # the checkpoint covering them is signed too
            rates.append(n / (time.perf_counter() - t0))
            log.close()
            db.dispose()
    # Baseline in the same run: one durable transaction per append (no group commit).
    with database(kind) as url:
        db = Database(url)
        store = LedgerStore(db, ORIGIN, SIGNER)
        store.init()
        m = 300
        t0 = time.perf_counter()
        for e in entries[:m]:
            store.sequence([encode_entry(e)])
        baseline = m / (time.perf_counter() - t0)
        db.dispose()
    size = len(encode_entry(entries[0]))
    RESULTS[f"bulk_{kind}"] = {"entries_per_s": median(rates), "runs": rates, "baseline": baseline}
    console.print(
        f"[bold]bulk append[/] {kind}: median {median(rates):,.0f} entries/s over {runs} runs "
        f"of {n:,} x {size} B (canonicalise + commit + integrate + sign); "
        f"baseline one-transaction-per-entry: {baseline:,.0f}/s"
    )


# --------------------------------------------------------------------------- HTTP


def _server_dir(url: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="cleanroom-bench-"))
    dd = DataDir(d)
    dd.save(Config(origin=ORIGIN, database_url=url))
    dd.write_key("log", SIGNER)
    return d


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
--auth--
local pad = string.rep("x", 880)
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/ledger/entries", nil,
    '{"type":"bench.entry","v":1,"n":' .. counter .. ',"pad":"' .. pad .. '"}')
end
"""


def _wrk(url: str, seconds: int, conns: int, script: Path | None) -> float:
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            errors = [ln for ln in out.splitlines() if "Non-2xx" in ln]
            if errors:
                raise RuntimeError(f"wrk saw errors: {errors}")
            return float(line.split()[1])
    raise RuntimeError(out)


def bench_http(kind: str, runs: int, workers: int, seconds: int = 10, conns: int = 64) -> None:
    if shutil.which("wrk") is None:
        console.print("[yellow]wrk not installed (apt install wrk): HTTP benchmark skipped")
        return
    script = Path(tempfile.mkdtemp()) / "post.lua"
    rates, health = [], []
    for _ in range(runs):
        with database(kind) as url:
            d = _server_dir(url)
            token = issue_token(d, "ledger-writer")
            script.write_text(
                WRK_LUA.replace("--auth--", f'wrk.headers["Authorization"] = "Bearer {token}"')
            )
            with ServerProcess(d, workers=workers) as srv:
                health.append(_wrk(srv.url + "/healthz", 3, conns, None))
                rates.append(_wrk(srv.url, seconds, conns, script))
                # every acknowledged append is really there
                time.sleep(0.5)
                size = int(httpx.get(srv.url + "/healthz").json()["log"]["size"])
            shutil.rmtree(d, ignore_errors=True)
    RESULTS[f"http_{kind}"] = {
        "appends_per_s": median(rates),
        "runs": rates,
        "workers": workers,
        "clients": conns,
        "baseline_healthz_per_s": median(health),
        "last_size": size,
    }
    console.print(
        f"[bold]HTTP append[/] {kind}: median {median(rates):,.0f} appends/s "
        f"({conns} concurrent clients, {workers} workers, wrk on the same 2 cores); "
        f"baseline GET /healthz (no DB write): {median(health):,.0f}/s"
    )


# --------------------------------------------------------------------------- latency


def bench_latency(kind: str, seconds: float = 10.0, clients: int = 8) -> None:
    with database(kind) as url:
        d = _server_dir(url)
        auth = {"Authorization": "Bearer " + issue_token(d, "ledger-writer")}
        with ServerProcess(d) as srv:
            acks: list[tuple[int, float]] = []
            published: list[tuple[float, int]] = []
            stop = threading.Event()
            lock = threading.Lock()

            def client(k: int) -> None:
                with httpx.Client(base_url=srv.url, headers=auth) as c:
                    i = 0
                    while not stop.is_set():
                        # (an access decision is the gate's to write: the API refuses it)
                        body = {**entry(k * 1_000_000 + i), "type": "bench.entry"}
                        r = c.post("/v1/ledger/entries", json=body)
                        r.raise_for_status()
                        t = time.monotonic()
                        with lock:
                            acks.append((r.json()["index"], t))
                        i += 1
                        time.sleep(0.005)

            def watcher() -> None:
                with httpx.Client(base_url=srv.url, headers=auth) as c:
                    while not stop.is_set() or len(published) == 0:
                        note = c.get("/log/checkpoint").text
                        size = parse_checkpoint(parse_note(note).text).size
                        published.append((time.monotonic(), size))
                        time.sleep(0.01)
                    end = time.monotonic() + 5
                    while time.monotonic() < end:
                        note = c.get("/log/checkpoint").text
                        published.append(
                            (time.monotonic(), parse_checkpoint(parse_note(note).text).size)
                        )
                        time.sleep(0.01)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
            w = threading.Thread(target=watcher)
            for t in [*threads, w]:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in [*threads, w]:
                t.join()
        shutil.rmtree(d, ignore_errors=True)
    lat = []
    for index, t_ack in acks:
        t_pub = next(t for t, size in published if size > index and t >= t_ack - 1)
        lat.append(max(0.0, t_pub - t_ack))
    res = {
        "p50_s": pct(lat, 50),
        "p99_s": pct(lat, 99),
        "entries": len(lat),
        "rate_per_s": len(lat) / seconds,
    }
    RESULTS[f"latency_{kind}"] = res
    console.print(
        f"[bold]append -> signed checkpoint[/] {kind}: p50 {res['p50_s']:.3f} s, "
        f"p99 {res['p99_s']:.3f} s over {len(lat):,} entries at {res['rate_per_s']:,.0f}/s "
        f"(observed by polling /log/checkpoint every 10 ms); anchors Tessera/TesseraCT 1-6 s"
    )


# --------------------------------------------------------------------------- proofs


def bench_proofs(kind: str, size: int, samples: int = 2000) -> None:
    with database(kind) as url:
        db = Database(url)
        log = Log(db, ORIGIN, SIGNER).start(background=False)
        chunk = 50_000
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"building a {size:,}-entry log ({kind})", total=size)
            for start in range(0, size, chunk):
                bodies = [
                    b'{"i":%d,"type":"bench.small","v":1}' % i
                    for i in range(start, min(size, start + chunk))
                ]
                log.append_many(bodies, chunk=chunk)
                log.integrate()
                bar.update(task, completed=start + len(bodies))
        store = log.store
        cp = store.latest()
        rng = random.Random(7)
        idx = [rng.randrange(size) for _ in range(samples)]
        times = []
        for i in idx:
            t0 = time.perf_counter()
            store.inclusion_proof(i, cp.size)
            times.append(time.perf_counter() - t0)
        # Memory in a separate pass (tracemalloc slows Python down): what serving
        # proofs allocates, including the bounded full-tile cache.
        store.full_tiles = type(store.full_tiles)()
        tracemalloc.start()
        for i in idx:
            store.inclusion_proof(i, cp.size)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # check a few
        for i in idx[:50]:
            body = store.entry(i)
            proofs.verify_inclusion(leaf_hash(body), i, cp.size, store.inclusion_proof(i), cp.root)
        # over HTTP, through the server
        d = _server_dir(url)
        http_times = []
        with ServerProcess(d) as srv, httpx.Client(base_url=srv.url) as c:
            for i in idx[:500]:
                t0 = time.perf_counter()
                r = c.get("/v1/ledger/proofs/inclusion", params={"index": i})
                http_times.append(time.perf_counter() - t0)
                assert r.status_code == 200
        shutil.rmtree(d, ignore_errors=True)
        log.close()
        db.dispose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Baseline: the whole tree in memory.
    tracemalloc.start()
    tree = MemoryTree()
    for i in range(size):
        tree.append_hash(leaf_hash(b"%d" % i))
    _, mem_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mem_times = []
    for i in idx:
        t0 = time.perf_counter()
        tree.inclusion_proof(i)
        mem_times.append(time.perf_counter() - t0)
    res = {
        "size": size,
        "lib_p50_ms": pct(times, 50) * 1e3,
        "lib_p99_ms": pct(times, 99) * 1e3,
        "http_p50_ms": pct(http_times, 50) * 1e3,
        "http_p99_ms": pct(http_times, 99) * 1e3,
        "proof_peak_traced_mib": peak / 2**20,
        "process_max_rss_mib": rss,
        "baseline_memory_tree_p50_ms": pct(mem_times, 50) * 1e3,
        "baseline_memory_tree_mib": mem_peak / 2**20,
    }
    RESULTS[f"proofs_{kind}"] = res
    console.print(
        f"[bold]inclusion proof at {size:,}[/] {kind}: library p50 {res['lib_p50_ms']:.3f} ms "
        f"p99 {res['lib_p99_ms']:.3f} ms; HTTP p50 {res['http_p50_ms']:.2f} ms "
        f"p99 {res['http_p99_ms']:.2f} ms; peak memory while proving "
        f"{res['proof_peak_traced_mib']:.1f} MiB incl. the bounded tile cache "
        f"(process max RSS {rss:.0f} MiB); "
        f"baseline whole tree in memory: p50 {res['baseline_memory_tree_p50_ms']:.3f} ms, "
        f"{res['baseline_memory_tree_mib']:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bulk-n", type=int, default=50_000)
    ap.add_argument("--proof-size", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="bulk,http,latency,proofs")
    ap.add_argument("--json", type=Path, default=Path("bench/out/ledger.json"))
    args = ap.parse_args()
    kinds = [k for k in args.db.split(",") if k]
    if "postgresql" in kinds and not pg_available():
        console.print("[yellow]PostgreSQL unreachable: skipping it")
        kinds.remove("postgresql")
    only = set(args.only.split(","))
    console.print(f"machine: {RESULTS['machine']}, date {RESULTS['date']}")
    for kind in kinds:
        if "bulk" in only:
            bench_bulk(kind, args.bulk_n, args.runs)
        if "http" in only:
            bench_http(kind, args.runs, args.workers)
        if "latency" in only:
            bench_latency(kind)
        if "proofs" in only:
            bench_proofs(kind, args.proof_size)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(RESULTS, indent=1))
    table = Table(title="ledger benchmark results")
    table.add_column("figure")
    table.add_column("value")
    for k, v in RESULTS.items():
        table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    console.print(table)


if __name__ == "__main__":
    main()
