"""What the hardening of issue 15 costs, each figure beside its baseline in the
same run: the input guard's I-JSON check of a 5,000-event batch (baseline:
plain ``json.loads``), event ingest through the API with the guard (baseline:
the same app without it), and the policy-invariant analysis (baseline: every
role tried, not the policy's own role literals).

    python bench/bench_hardening.py [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from cleanroom.api import create_app
from cleanroom.api.guard import InputGuard, check_ijson
from cleanroom.gate import Principal, analysis
from cleanroom.gate.policy import shipped
from cleanroom.ledger.note import generate_signer
from cleanroom.room import issue_token
from cleanroom.room.config import Config, DataDir
from common import machine

BATCH = 5_000


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"e{start + i}", "user": f"u{i % 200}", "video": f"v{i % 300}", "kind": "view",
             "ts_ms": 1_700_000_000_000 + start + i, "watch_ms": 12_345,
             "context": {"device": "ios", "session": i % 17}} for i in range(n)]  # fmt: skip


def bench_check(runs: int = 20) -> dict:
    body = json.dumps({"events": _events(BATCH)}).encode()

    def timed(f) -> float:
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            f(body)
            out.append(time.perf_counter() - t0)
        return statistics.median(out) * 1000

    return {"ijson_check_ms": timed(check_ijson), "baseline_json_loads_ms": timed(json.loads)}


def _ingest(tmp: Path, guard: bool, batches: int) -> float:
    dd = DataDir(tmp)
    dd.save(Config(origin="bench.example/log"))
    dd.write_key("log", generate_signer("bench.example/log"))
    app = create_app(str(dd.path))
    if not guard:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not InputGuard]
    with TestClient(app) as c:
        app.state.room.principals.add(Principal("app", "service", "platform", "ingest", "US", 1))
        c.headers["Authorization"] = "Bearer " + issue_token(dd, "app")
        for u in range(200):
            c.put(f"/v1/users/u{u}", json={"jurisdiction": "US", "profile": {}})
        c.post("/v1/videos", json={"videos": [{"id": f"v{i}", "creator": "c"} for i in range(300)]})
        bodies = [json.dumps({"events": _events(BATCH, k * BATCH)}) for k in range(batches)]
        t0 = time.perf_counter()
        for b in bodies:
            r = c.post("/v1/events", content=b, headers={"content-type": "application/json"})
            r.raise_for_status()
        return batches * BATCH / (time.perf_counter() - t0)


def bench_analysis() -> dict:
    bundle = shipped()
    t0 = time.perf_counter()
    folded = analysis.analyse(bundle)
    folded_s = time.perf_counter() - t0
    every = tuple(sorted(set(analysis.ROLES)))
    original = analysis.role_domain
    analysis.role_domain = lambda text: lambda purpose: every  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        full = analysis.analyse(bundle)
        full_s = time.perf_counter() - t0
    finally:
        analysis.role_domain = original
    assert [f.holds for f in folded] == [f.holds for f in full]
    return {
        "analysis_s": folded_s, "analysis_requests": sum(f.checked for f in folded),
        "baseline_every_role_s": full_s, "baseline_requests": sum(f.checked for f in full),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    c = bench_check()
    print(f"I-JSON check of {BATCH:,} events: {c['ijson_check_ms']:.1f} ms "
          f"(baseline json.loads {c['baseline_json_loads_ms']:.1f} ms)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        guarded = _ingest(Path(tmp) / "guarded", True, args.batches)
        bare = _ingest(Path(tmp) / "bare", False, args.batches)
    print(f"ingest through the API (ASGI, SQLite, {BATCH:,}-event batches): {guarded:,.0f} "
          f"events/s with the guard (baseline without it: {bare:,.0f} events/s)")  # fmt: skip
    a = bench_analysis()
    print(f"policy invariants: {a['analysis_requests']:,} requests in {a['analysis_s']:.1f} s "
          f"(baseline, every role: {a['baseline_requests']:,} requests in "
          f"{a['baseline_every_role_s']:.1f} s; same verdicts)")  # fmt: skip


if __name__ == "__main__":
    main()
