"""Screening benchmarks (issue 6): matcher accuracy and screening throughput.

Accuracy
  - the nomenklatura name benchmark (bench/data/name_bench_cases.csv, 826 pairs)
    at the one fixed threshold of the shipped matcher: in-sample (the weights
    were fitted on these pairs) and 5-fold cross-validated (each pair scored by
    weights fitted without it — the honest figure); baseline: OpenSanctions'
    logic-v2 matcher run on the same pairs when bench/baseline_logic_v2.py can
    run (a Python with nomenklatura: BASELINE_PYTHON), else its published figure;
  - the labelled Chinese company pairs (bench/data/zh_company_pairs.csv):
    precision and recall, overall and for the companies absent from the
    matcher's term table (held out).

Throughput
  - screening against the bundled lists (OFAC SDN + consolidated + FCC: every
    name and alias) with a query mix of perturbed listed names, unlisted
    company names and Chinese-script names: one process and two processes
    (2 vCPUs); baseline in the same run: a brute-force scan (rapidfuzz WRatio
    over every listed name, then the same matcher on the best ten).

    .venv/bin/python bench/bench_screen.py [--queries 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process
from rich.console import Console
from rich.progress import track

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cleanroom.screen.index import ListIndex, bundled_index  # noqa: E402
from cleanroom.screen.lists import bundled_snapshots  # noqa: E402
from cleanroom.screen.normalize import normalize  # noqa: E402
from fit_matcher import (  # noqa: E402
    ORG,
    cross_validated,
    feature_rows,
    load_cases,
    load_zh_cases,
    prf,
    zero_matcher,
)

console = Console()
HELD_OUT = {"byd", "catl", "boe", "jd", "pinduoduo", "netease", "meituan", "ezviz"}
PUBLISHED_LOGIC_V2 = (0.76, 0.82, 0.79)


def accuracy() -> dict:
    ix = bundled_index()
    m = ix.matcher
    nk = load_cases()
    pred = np.array([m.score(c["name1"], c["name2"], c["schema"]) >= m.threshold for c in nk])
    y = np.array([c["is_match"] == "true" for c in nk])
    shipped = prf(pred, y.astype(float))
    cases = nk + load_zh_cases()
    x, yy = feature_rows(zero_matcher(), cases)
    org = np.array([c["schema"] in ORG for c in cases])
    cv = cross_validated(x, yy, org) >= m.threshold
    cv_nk = prf(cv[: len(nk)], yy[: len(nk)])
    seeds = [  # the same 5-fold CV over 8 different fold assignments
        prf(cross_validated(x, yy, org, seed=s)[: len(nk)] >= m.threshold, yy[: len(nk)])[2]
        for s in range(1, 9)
    ]
    zh = load_zh_cases()
    zp = np.array([m.score(c["name1"], c["name2"]) >= m.threshold for c in zh])
    zy = np.array([c["is_match"] == "true" for c in zh])
    held = np.array(
        [bool(set(c["category"].split(":")[1].replace("<", "/").split("/")) & HELD_OUT) for c in zh]
    )
    out = {
        "threshold": m.threshold,
        "nk_pairs": len(nk),
        "nk_in_sample": shipped,
        "nk_cv5": cv_nk,
        "nk_cv5_seeds": (min(seeds), statistics.fmean(seeds), max(seeds)),
        "zh_pairs": len(zh),
        "zh": prf(zp, zy.astype(float)),
        "zh_cv5": prf(cv[len(nk) :], yy[len(nk) :]),
        "zh_in_table": prf(zp[~held], zy[~held].astype(float)),
        "zh_held_out": prf(zp[held], zy[held].astype(float)),
        "zh_held_out_pairs": int(held.sum()),
        "baseline": baseline("name_bench_cases.csv", y.astype(float))
        or {"source": "published by OpenSanctions, threshold 0.7", "prf": PUBLISHED_LOGIC_V2},
        "zh_baseline": baseline("zh_company_pairs.csv", zy.astype(float)),
    }
    return out


def baseline(csv_name: str, y: np.ndarray) -> dict | None:
    """logic-v2 on the same pairs (None when BASELINE_PYTHON cannot run it)."""
    py = os.environ.get("BASELINE_PYTHON")
    if not py:
        return None
    r = subprocess.run(
        [py, str(HERE / "baseline_logic_v2.py"), str(HERE / "data" / csv_name)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if r.returncode != 0:
        console.print(f"[yellow]baseline did not run: {r.stderr.strip()[-300:]}")
        return None
    pred = np.array([s >= 0.7 for s in json.loads(r.stdout)])
    return {"source": "run here: nomenklatura logic-v2, threshold 0.7", "prf": prf(pred, y)}


# -- throughput -----------------------------------------------------------------------

WORDS = (
    "Alpine", "Harbor", "Crescent", "Delta", "Evergreen", "Falcon", "Granite", "Horizon", "Ivory",
    "Juniper", "Keystone", "Lakeside", "Meridian", "Northgate", "Oakridge", "Pinnacle", "Quarry",
    "Riverside", "Summit", "Timber", "Upland", "Vantage", "Willow", "Yardley", "Zenith",
)  # fmt: skip
KINDS = ("Logistics", "Foods", "Textiles", "Analytics", "Dental", "Motors", "Media", "Labs")
FORMS = ("LLC", "Inc.", "Co., Ltd.", "GmbH", "S.A.", "Limited", "")


def queries(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    listed = [e.text for e in bundled_index().entries]
    zh = [
        name
        for line in (HERE / "data" / "zh_companies.tsv").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
        for name in line.split("\t")[2].split("|")
        if not name.isascii()
    ]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            name = list(rng.choice(listed))
            if len(name) > 4 and rng.random() < 0.6:  # a typo
                i = rng.randrange(len(name))
                name[i] = rng.choice("aeiourstn")
            out.append("".join(name).title() if rng.random() < 0.5 else "".join(name))
        elif r < 0.8:
            out.append(
                f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(KINDS)} "
                f"{rng.choice(FORMS)}".strip()
            )
        else:
            out.append(rng.choice(zh))
    return out


def _latencies(names: list[str], progress: str | None = None) -> list[float]:
    ix = bundled_index()
    out = []
    for q in track(names, description=progress) if progress else names:
        t = time.perf_counter()
        ix.screen(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _worker(names: list[str]) -> list[float]:
    bundled_index()  # built before the clock starts (each process has its own)
    return _latencies(names)


def brute_force(names: list[str]) -> list[float]:
    ix = bundled_index()
    keys = [e.name.key for e in ix.entries]
    out = []
    for q in track(names, description="brute force"):
        t = time.perf_counter()
        nq = normalize(q)
        best = process.extract(nq.key, keys, scorer=fuzz.WRatio, limit=10)
        for _, _, i in best:
            ix.matcher.compare(nq, ix.entries[i].name)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


def throughput(n: int) -> dict:
    t = time.perf_counter()
    cold_ix = ListIndex(bundled_snapshots())
    build = time.perf_counter() - t
    cold = []  # a fresh index: no word has been looked up yet
    for q in queries(500, seed=13):
        t = time.perf_counter()
        cold_ix.screen(q)
        cold.append((time.perf_counter() - t) * 1000)
    ix = bundled_index()
    warm = queries(300, seed=5)
    _latencies(warm)  # warm the caches the way a running server has them
    names = queries(n)
    # the two workers fork now, with the same warm caches as this process
    with mp.get_context("fork").Pool(2) as pool:
        t = time.perf_counter()
        lat = _latencies(names, "one process")
        one = time.perf_counter() - t
        half = len(names) // 2
        t = time.perf_counter()
        parts = pool.map(_worker, [names[:half], names[half:]])
        two = time.perf_counter() - t
    bf_names = names[: min(200, n)]
    bf = brute_force(bf_names)
    return {
        "names_indexed": len(ix),
        "parties": sum(len(s.parties) for s in bundled_snapshots()),
        "index_build_s": build,
        "queries": n,
        "one_process": {
            "per_s": n / one,
            "p50": pct(lat, 50),
            "p95": pct(lat, 95),
            "p99": pct(lat, 99),
            "mean": statistics.fmean(lat),
        },
        "cold": {
            "queries": len(cold),
            "per_s": 1000 / statistics.fmean(cold),
            "p95": pct(cold, 95),
        },
        "two_processes": {"per_s": n / two, "p95": pct([x for p in parts for x in p], 95)},
        "brute_force": {
            "queries": len(bf_names),
            "per_s": 1000 / statistics.fmean(bf),
            "p95": pct(bf, 95),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="screening benchmarks")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    if not args.skip_accuracy:
        a = accuracy()
        f = "P {0:.3f} R {1:.3f} F1 {2:.3f}"
        console.rule("accuracy")
        console.print(f"nomenklatura benchmark, {a['nk_pairs']} pairs, threshold {a['threshold']}")
        console.print("  cleanroom, in-sample:      " + f.format(*a["nk_in_sample"]))
        console.print("  cleanroom, 5-fold CV:      " + f.format(*a["nk_cv5"]))
        lo, mean, hi = a["nk_cv5_seeds"]
        console.print(
            f"  cleanroom, 5-fold CV over 8 fold assignments: F1 mean {mean:.3f} "
            f"(min {lo:.3f}, max {hi:.3f})"
        )
        console.print(
            f"  baseline logic-v2 ({a['baseline']['source']}): " + f.format(*a["baseline"]["prf"])
        )
        console.print(f"Chinese company pairs, {a['zh_pairs']} pairs")
        console.print("  all:                          " + f.format(*a["zh"]))
        console.print("  5-fold CV:                    " + f.format(*a["zh_cv5"]))
        console.print("  companies in the term table:  " + f.format(*a["zh_in_table"]))
        console.print(
            f"  held out ({a['zh_held_out_pairs']} pairs):         " + f.format(*a["zh_held_out"])
        )
        if a["zh_baseline"]:
            console.print("  baseline logic-v2 (run here):  " + f.format(*a["zh_baseline"]["prf"]))
    console.rule("throughput")
    t = throughput(args.queries)
    o, two, bf = t["one_process"], t["two_processes"], t["brute_force"]
    console.print(
        f"{t['names_indexed']:,} names and aliases of {t['parties']:,} listed parties; "
        f"index built in {t['index_build_s']:.1f} s"
    )
    console.print(
        f"one process:   {o['per_s']:.0f} screens/s, p50 {o['p50']:.2f} ms, "
        f"p95 {o['p95']:.2f} ms, p99 {o['p99']:.2f} ms"
    )
    console.print(f"two processes: {two['per_s']:.0f} screens/s, p95 {two['p95']:.2f} ms")
    c = t["cold"]
    console.print(
        f"cold index (first {c['queries']} queries, nothing cached): {c['per_s']:.0f} screens/s, "
        f"p95 {c['p95']:.2f} ms"
    )
    console.print(
        f"baseline, brute-force scan ({bf['queries']} queries): {bf['per_s']:.0f} "
        f"screens/s, p95 {bf['p95']:.2f} ms"
    )


if __name__ == "__main__":
    main()
