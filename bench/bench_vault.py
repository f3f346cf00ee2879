"""Vault and gate benchmarks (issue 3): encrypted event ingest (library and HTTP),
gate decision latency (cache miss = Cedar, cache hit), bulk decryption for
training. Each figure is printed with the baseline measured in the same run.

    python bench/bench_vault.py [--db sqlite,postgresql] [--events 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cedarpy
import httpx
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.gate import Principal
from cleanroom.ledger.note import generate_signer
from cleanroom.ledger.serving import ServerProcess
from cleanroom.room import CleanRoom, datasets, issue_token
from cleanroom.room.config import Config, DataDir
from cleanroom.vault import Event
from common import database, machine, median, pct, pg_available

console = Console()
APP = Principal("bench-app", "service", "platform", "ingest", "US", 1)
BATCH = 10_000
HTTP_BATCH = 5_000


def _dir(url: str, tmp: Path) -> DataDir:
    dd = DataDir(tmp)
    dd.save(Config(origin="bench.example/log", database_url=url))
    dd.write_key("log", generate_signer("bench.example/log"))
    return dd


def _data(n_events: int) -> tuple[list, list, list[Event]]:
    users, videos, events = datasets.load("kuairec-small")
    out = list(events)
    k = 0
    while len(out) < n_events:  # repeat the real events under new ids
        k += 1
        out.extend(
            Event(f"{e.id}-r{k}", e.user, e.video, e.kind, e.ts_ms + k, e.watch_ms, e.context)
            for e in events
        )
    return users, videos, out[:n_events]


def _room(url: str, tmp: Path, users, videos) -> CleanRoom:
    room = CleanRoom.open(_dir(url, tmp))
    room.principals.add(APP)
    g = room.gate
    room.vault.put_users(g.require(APP, "write", "Profile", subjects=[u.id for u in users]), users)
    room.vault.put_videos(g.require(APP, "write", "Videos"), videos)
    return room


def bench_ingest(kind: str, n: int, tmp: Path) -> dict:
    users, videos, events = _data(n)
    with database(kind) as url:
        room = _room(url, tmp / f"ingest-{kind}", users, videos)
        try:
            g, v = room.gate, room.vault
            t0 = time.perf_counter()
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"bulk ingest {kind}", total=len(events))
                for i in range(0, len(events), BATCH):
                    part = events[i : i + BATCH]
                    grant = g.require(APP, "write", "Events", subjects=[e.user for e in part])
                    v.add_events(grant, part)
                    bar.advance(task, len(part))
            bulk = len(events) / (time.perf_counter() - t0)
            # baseline: one event per gate decision and transaction
            base_events = [
                Event(f"b-{i}", e.user, e.video, e.kind, e.ts_ms, e.watch_ms, e.context)
                for i, e in enumerate(events[:500])
            ]
            t0 = time.perf_counter()
            for e in base_events:
                v.add_events(g.require(APP, "write", "Events", subjects=[e.user]), [e])
            single = len(base_events) / (time.perf_counter() - t0)
            # bulk decryption of everything stored, as the recommender
            rec = room.system("recommender")
            grant = g.require(rec, "read", "Events", purpose="recommendation", all_subjects=True)
            runs = []
            for _ in range(3):
                room.vault.keys._cache.clear()  # include unwrapping every user's key
                t0 = time.perf_counter()
                total = sum(len(p) for p in v.iter_events(grant))
                runs.append(total / (time.perf_counter() - t0))
            decrypt = median(runs)
            # baseline: the per-user read path (one query and decrypt per user)
            staff = Principal("bench-staff", "person", "operator", "support", "US", 1)
            room.principals.add(staff)
            t0 = time.perf_counter()
            got = 0
            for u in users[:200]:
                gr = g.require(staff, "read", "Events", purpose="support", subjects=[u.id])
                got += len(v.user_events(gr, u.id, limit=100_000))
            per_user = got / (time.perf_counter() - t0)
        finally:
            room.close()
    return {
        "bulk_ingest_per_s": bulk,
        "baseline_one_event_per_txn_per_s": single,
        "bulk_decrypt_per_s": decrypt,
        "decrypted_events": total,
        "baseline_per_user_read_per_s": per_user,
    }


async def _post_batches(
    url: str, token: str, events: list[Event], concurrency: int, size: int = HTTP_BATCH
) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as c:

        async def send(part: list[Event]) -> None:
            body = json.dumps({"events": [e.to_dict() for e in part]})
            async with sem:
                r = await c.post(
                    "/v1/events", content=body, headers={"content-type": "application/json"}
                )
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(send(events[i : i + size]) for i in range(0, len(events), size)))
        return len(events) / (time.perf_counter() - t0)


def bench_http(kind: str, n: int, tmp: Path, workers: int = 1) -> dict:
    # one server process: several are nodes of a cluster since issue 17 and
    # need a state store and a bus (bench_cluster.py measures those)
    users, videos, events = _data(n)
    with database(kind) as url:
        room = _room(url, tmp / f"http-{kind}", users, videos)
        dd = DataDir(tmp / f"http-{kind}")
        room.close()
        token = issue_token(dd, "bench-app")
        with ServerProcess(dd.path, workers=workers) as srv:
            rate = asyncio.run(_post_batches(srv.url, token, events, concurrency=2))
            base = [
                Event(f"h-{i}", e.user, e.video, e.kind, e.ts_ms, e.watch_ms, e.context)
                for i, e in enumerate(events[:400])
            ]
            single = asyncio.run(_post_batches(srv.url, token, base, concurrency=8, size=1))
    return {"http_batches_per_s": rate, "baseline_one_event_per_request_per_s": single}


def bench_gate(tmp: Path) -> dict:
    with database("sqlite") as url:
        room = CleanRoom.open(_dir(url, tmp / "gate"))
        try:
            g = room.gate
            people = [
                Principal(f"staff-{i}", "person", "operator", "support", "US", 1)
                for i in range(3000)
            ]
            miss, hit = [], []
            for p in people:
                g.invalidate()
                t0 = time.perf_counter_ns()
                g.evaluate(p, "read", "Profile", purpose="support")
                miss.append((time.perf_counter_ns() - t0) / 1000)
            p = people[0]
            g.evaluate(p, "read", "Profile", purpose="support")
            for _ in range(20_000):
                t0 = time.perf_counter_ns()
                g.evaluate(p, "read", "Profile", purpose="support")
                hit.append((time.perf_counter_ns() - t0) / 1000)
            # baseline: Cedar with the policy text parsed on every call
            text, schema = g.policy.text, g.policy.files["schema.cedarschema"]
            naive = []
            ents = [
                {
                    "uid": {"type": "Principal", "id": "x"},
                    "attrs": {
                        "kind": "person",
                        "org": "operator",
                        "role": "support",
                        "jurisdiction": "US",
                        "clearance": 1,
                    },
                    "parents": [],
                },
                {
                    "uid": {"type": "Profile", "id": "r"},
                    "attrs": {"data_class": "protected", "jurisdiction": "US"},
                    "parents": [],
                },
            ]
            req = {
                "principal": 'Principal::"x"',
                "action": 'Action::"read"',
                "resource": 'Profile::"r"',
                "context": {"purpose": "support", "self_access": False},
            }
            for _ in range(500):
                t0 = time.perf_counter_ns()
                cedarpy.is_authorized(req, text, ents, schema)
                naive.append((time.perf_counter_ns() - t0) / 1000)
            # a whole decision: evaluate + ledger entry (durable) + grant
            room.principals.add(people[1])
            full = []
            for _ in range(300):
                t0 = time.perf_counter_ns()
                g.decide(people[1], "read", "Profile", purpose="support")
                full.append((time.perf_counter_ns() - t0) / 1000)
        finally:
            room.close()
    return {
        "miss_p50_us": pct(miss, 50),
        "miss_p99_us": pct(miss, 99),
        "hit_p50_us": pct(hit, 50),
        "hit_p99_us": pct(hit, 99),
        "baseline_reparse_p50_us": pct(naive, 50),
        "baseline_reparse_p99_us": pct(naive, 99),
        "decide_with_ledger_p50_us": pct(full, 50),
        "decide_with_ledger_p99_us": pct(full, 99),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--http-events", type=int, default=100_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import tempfile

    kinds = [k for k in args.db.split(",") if k != "postgresql" or pg_available()]
    results: dict = {"machine": machine(), "date": datetime.now(UTC).isoformat(), "runs": {}}
    console.print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        g = bench_gate(tmp)
        results["gate"] = g
        console.print(
            f"gate miss (Cedar) p50 {g['miss_p50_us']:.0f} µs p99 {g['miss_p99_us']:.0f} µs; "
            f"hit p50 {g['hit_p50_us']:.1f} µs p99 {g['hit_p99_us']:.1f} µs "
            f"(baseline: policy text re-parsed per call p50 {g['baseline_reparse_p50_us']:.0f} "
            f"µs p99 {g['baseline_reparse_p99_us']:.0f} µs); whole decision with its durable "
            f"ledger entry p50 {g['decide_with_ledger_p50_us'] / 1000:.2f} ms "
            f"p99 {g['decide_with_ledger_p99_us'] / 1000:.2f} ms"
        )
        for kind in kinds:
            r = bench_ingest(kind, args.events, tmp)
            r.update(bench_http(kind, args.http_events, tmp))
            results["runs"][kind] = r
            console.print(
                f"[bold]{kind}[/]: bulk ingest {r['bulk_ingest_per_s']:,.0f} events/s "
                f"(baseline one per txn {r['baseline_one_event_per_txn_per_s']:,.0f}/s); "
                f"HTTP batches of {HTTP_BATCH} {r['http_batches_per_s']:,.0f} events/s "
                f"(baseline one per request "
                f"{r['baseline_one_event_per_request_per_s']:,.0f}/s); "
                f"bulk decrypt {r['bulk_decrypt_per_s']:,.0f} events/s over "
                f"{r['decrypted_events']:,} (baseline per-user reads "
                f"{r['baseline_per_user_read_per_s']:,.0f}/s)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
