"""``cleanroom load`` as an operator meets it: kuairec-small exported to the
files a platform's warehouse gives (CSV, JSON lines, Parquet), loaded with the
command into a fresh local clean room (SQLite) and through a running
server's API; then a 1,000,000-event Parquet file, with the loading
process's peak memory. The baseline in the same run: the demo's way in —
the same events sent by a hand-written async client (``load_through_api``).

    .venv/bin/python bench/bench_load.py [--skip-million] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cleanroom.ledger.serving import ServerProcess
from cleanroom.room import datasets
from cleanroom.room.datasets import load_through_api

CLI = [sys.executable, "-m", "cleanroom.cli"]


def export(out: Path) -> dict[str, Path]:
    """kuairec-small as a warehouse would hand it over."""
    users, videos, events = datasets.load("kuairec-small")
    files = {}
    with (out / "users.csv").open("w") as f:
        f.write("id,jurisdiction,profile.handle,profile.email,synthetic\n")
        for u in users:
            f.write(
                f"{u.id},{u.jurisdiction},{u.profile.get('handle', '')},"
                f"{u.profile.get('email', '')},true\n"
            )
    files["users"] = out / "users.csv"
    with (out / "videos.jsonl").open("w") as f:
        for v in videos:
            f.write(json.dumps(v.to_dict()) + "\n")
    files["videos"] = out / "videos.jsonl"
    rows = [e.to_dict() for e in events]
    for r in rows:
        r["context"] = json.dumps(r["context"]) if r["context"] else None
    pq.write_table(pa.Table.from_pylist(rows), out / "events.parquet")
    files["events"] = out / "events.parquet"
    with (out / "events.csv").open("w") as f:
        f.write("id,user,video,kind,ts_ms,watch_ms\n")
        for e in events:
            f.write(f"{e.id},{e.user},{e.video},{e.kind},{e.ts_ms},{e.watch_ms}\n")
    files["events_csv"] = out / "events.csv"
    return files


def million(out: Path, n: int = 1_000_000) -> Path:
    """n events over kuairec-small's users and videos, written a part at a time."""
    users, videos, _ = datasets.load("kuairec-small")
    path = out / "million.parquet"
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("user", pa.string()),
            ("video", pa.string()),
            ("kind", pa.string()),
            ("ts_ms", pa.int64()),
            ("watch_ms", pa.int64()),
        ]
    )
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, n, 100_000):
            idx = range(start, min(n, start + 100_000))
            w.write_table(
                pa.table(
                    {
                        "id": [f"m{i}" for i in idx],
                        "user": [users[i % len(users)].id for i in idx],
                        "video": [videos[(i * 7) % len(videos)].id for i in idx],
                        "kind": ["view" if i % 3 else "skip" for i in idx],
                        "ts_ms": [datasets.EPOCH_MS + i * 10 for i in idx],
                        "watch_ms": [(i % 60) * 1000 for i in idx],
                    },
                    schema=schema,
                )
            )
    return path


def cli(data_dir: Path, *args: str) -> tuple[float, dict, int]:
    """Run ``cleanroom load`` as a process: seconds, its JSON report (with the
    process's own peak RSS, MiB)."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [*CLI, "--data-dir", str(data_dir), *args, "--json"], capture_output=True, text=True
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    return dt, rep, rep["peak_rss_mib"]


def fresh(base: Path, name: str) -> tuple[Path, str]:
    """A new data directory with a platform ingest service; its token."""
    dd = base / name
    subprocess.run([*CLI, "--data-dir", str(dd), "init"], check=True, capture_output=True)
    subprocess.run(
        [
            *CLI,
            "--data-dir",
            str(dd),
            "principal",
            "add",
            "ingest",
            "--org",
            "platform",
            "--role",
            "ingest",
            "--jurisdiction",
            "US",
            "--kind",
            "service",
        ],
        check=True,
        capture_output=True,
    )
    token = subprocess.run(
        [*CLI, "--data-dir", str(dd), "principal", "token", "ingest"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dd, next(w for w in token.split() if w.startswith("crt_"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        files = export(base)
        n_events = pq.ParquetFile(files["events"]).metadata.num_rows
        print(f"kuairec-small exported: {n_events:,} events")

        dd, _ = fresh(base, "local")
        for kind, key in (("users", "users"), ("videos", "videos")):
            dt, rep, _ = cli(dd, "load", kind, str(files[key]))
            print(f"local {kind}: {rep['stored']:,} in {dt:.1f} s")
        dt, rep, rss = cli(dd, "load", "events", str(files["events"]), "--batch", "10000")
        out["local_parquet"] = {
            "events": rep["stored"],
            "seconds": dt,
            "peak_rss_mib": rss,
            "events_per_s": rep["rows_per_s"],
            "process_s": dt,
        }
        print(
            f"local events (Parquet): {rep['stored']:,} in {rep['seconds']:.1f} s = "
            f"{rep['rows_per_s']:,} events/s (process {dt:.1f} s)"
        )
        dt, rep, _ = cli(dd, "load", "events", str(files["events"]), "--batch", "10000")
        out["local_rerun"] = {"stored": rep["stored"], "resumed": rep["resumed"], "seconds": dt}
        print(
            f"the same command again: {rep['stored']} stored, "
            f"{rep['resumed']:,} skipped, {dt:.1f} s"
        )

        dd2, token = fresh(base, "served")
        server = ServerProcess(dd2).wait_ready(120)
        try:
            url = ["--url", server.url, "--token", token]
            cli(dd2, "load", "users", str(files["users"]), *url)
            cli(dd2, "load", "videos", str(files["videos"]), *url)
            dt, rep, _ = cli(dd2, "load", "events", str(files["events_csv"]), *url)
            out["api_csv"] = {
                "events": rep["stored"],
                "seconds": dt,
                "events_per_s": rep["rows_per_s"],
            }
            print(
                f"through the API (CSV): {rep['stored']:,} in {rep['seconds']:.1f} s = "
                f"{rep['rows_per_s']:,} events/s"
            )
        finally:
            server.stop()

        dd3, token3 = fresh(base, "baseline")
        server = ServerProcess(dd3).wait_ready(120)
        try:
            users, videos, events = datasets.load("kuairec-small")
            t0 = time.perf_counter()
            asyncio.run(load_through_api(server.url, token3, users, videos, events))
            dt = time.perf_counter() - t0
            out["baseline_async_client"] = {
                "events": len(events),
                "seconds": dt,
                "events_per_s": round(len(events) / dt),
            }
            print(
                "baseline (the demo's async client, users+videos+events): "
                f"{len(events) / dt:,.0f} events/s"
            )
        finally:
            server.stop()

        if not args.skip_million:
            path = million(base)
            dd4, _ = fresh(base, "million")
            cli(dd4, "load", "users", str(files["users"]))
            cli(dd4, "load", "videos", str(files["videos"]))
            dt, rep, rss = cli(dd4, "load", "events", str(path), "--batch", "10000")
            out["million_parquet"] = {
                "events": rep["stored"],
                "seconds": dt,
                "events_per_s": rep["rows_per_s"],
                "peak_rss_mib": rss,
            }
            print(f"1,000,000-event Parquet: {rep['rows_per_s']:,} events/s, peak RSS {rss} MiB")
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
