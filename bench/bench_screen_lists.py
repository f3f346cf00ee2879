"""Screening judged as it is used: every query against all the bundled lists
(OFAC SDN, OFAC consolidated, FCC Covered List — what ``screen batch``
screens against), judged by its best hit.

Query sets (all in ``bench/data``, with their sources in its README):

- ``index``: 1,837 names of companies in 20 stock indices (S&P 500, DAX,
  Nikkei 225, FTSE 100, ...), as the ``pytickersymbols`` package ships them —
  on none of the lists: every alert is false;
- ``zh-clean``: Chinese consumer and industrial companies on none of the
  lists (``zh_clean_companies.tsv``, and the unlisted companies of
  ``zh_companies.tsv``), in Chinese script, English and brand;
- ``zh-listed``: the listed Chinese companies of ``zh_companies.tsv`` written
  the ways people write them (Chinese script, pinyin, English, brand,
  acronym, with and without place and legal form) and each English or pinyin
  name once more with a typo (two letters of its longest word swapped); the
  parties a screening must find are in ``zh_listed.tsv``.

Figures at a threshold: false alerts per 100 clean names; recall of the
listed (a right party at or above the threshold); precision on the Chinese
names (of the Chinese queries that alert, the share whose alert includes a
right party). The threshold curve of each. With ``BASELINE_PYTHON`` set to a
Python that has nomenklatura, OpenSanctions' logic-v2 scores the same
queries against the same candidates (our index's), at its own threshold 0.7.

    .venv/bin/python bench/bench_screen_lists.py [--threshold T] [--json]
    BASELINE_PYTHON=/tmp/nk/bin/python .venv/bin/python bench/bench_screen_lists.py
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cleanroom.screen.index import ListIndex, schema_of
from cleanroom.screen.lists import bundled_snapshots
from cleanroom.screen.normalize import normalize

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CURVE = tuple(round(0.3 + 0.05 * k, 2) for k in range(14))  # 0.30 … 0.95
BASELINE_THRESHOLD = 0.7  # logic-v2's own (yente's default)
console = Console(stderr=True)


@dataclass
class Query:
    name: str
    set: str  # index, zh-clean, zh-listed
    form: str  # zh, acronym, latin, typo
    company: str = ""
    expect: frozenset[str] = frozenset()  # party ids a screening must find
    best: float = 0.0  # best score of any party
    best_right: float = 0.0  # best score of a right party
    best_hit: str = ""  # what the best hit was
    right_reason: str = ""  # why the best right hit scored as it did
    baseline: dict[str, float] = field(default_factory=dict)  # party -> logic-v2


def _tsv(path: Path) -> list[list[str]]:
    return [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def form_of(name: str) -> str:
    if any("\u3400" <= ch <= "\u9fff" for ch in name):
        return "zh"
    words = name.replace(".", "").split()
    if len(words) == 1 and words[0].isupper() and len(words[0]) <= 6:
        return "acronym"
    return "latin"


def typo(name: str) -> str | None:
    """The name with two neighbouring letters of its longest word swapped (a
    position chosen by the name's digest: the same typo every run)."""
    words = name.split()
    longest = max(range(len(words)), key=lambda k: (len(words[k]), -k))
    w = words[longest]
    if len(w) < 5 or not w.isalpha():
        return None
    k = 1 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % (len(w) - 3)
    if w[k] == w[k + 1]:
        return None
    words[longest] = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    return " ".join(words)


def queries() -> list[Query]:
    out = []
    with open(DATA / "clean_companies.csv", newline="", encoding="utf-8") as f:
        out += [Query(r["name"], "index", form_of(r["name"])) for r in csv.DictReader(f)]
    listed = {c: frozenset(ids.split("|")) for c, ids in _tsv(DATA / "zh_listed.tsv")}
    for ident, parent, names in _tsv(DATA / "zh_companies.tsv"):
        if ident in listed:
            for n in dict.fromkeys(names.split("|")):
                out.append(Query(n, "zh-listed", form_of(n), ident, listed[ident]))
                t = typo(n) if form_of(n) == "latin" else None
                if t:
                    out.append(Query(t, "zh-listed", "typo", ident, listed[ident]))
        elif parent in listed:
            continue  # a listed company's subsidiary: counted neither way
        else:
            out += [Query(n, "zh-clean", form_of(n), ident) for n in names.split("|")]
    for ident, names in _tsv(DATA / "zh_clean_companies.tsv"):
        out += [Query(n, "zh-clean", form_of(n), ident) for n in names.split("|")]
    return out


def screen_all(index: ListIndex, qs: list[Query]) -> float:
    """Each query's best hit and best right hit; screens per second."""
    t = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("screening", total=len(qs))
        for q in qs:
            hits = index.screen(q.name, "any", limit=50)
            if hits:
                q.best = hits[0].score
                h = hits[0].entry
                q.best_hit = f"{h.list_id} {h.party.id} {h.party.name!r} via {h.text!r}"
            right = [h for h in hits if h.entry.party.id in q.expect]
            if right:
                q.best_right = right[0].score
                q.right_reason = f"{right[0].entry.text!r}: {right[0].comparison.reason()}"
            bar.advance(task)
    return len(qs) / (time.perf_counter() - t)


def figures(qs: list[Query], t: float, score=None) -> dict:
    """False alerts, recall and precision at threshold ``t``; ``score(q)``
    gives (best, best right) — ours by default."""
    score = score or (lambda q: (q.best, q.best_right))
    out: dict = {"threshold": t}
    for s in ("index", "zh-clean"):
        clean = [q for q in qs if q.set == s]
        alerts = sum(1 for q in clean if score(q)[0] >= t)
        out[f"false_alerts_per_100_{s}"] = round(100 * alerts / max(1, len(clean)), 2)
    clean = [q for q in qs if q.set != "zh-listed"]
    out["false_alerts_per_100_all_clean"] = round(
        100 * sum(1 for q in clean if score(q)[0] >= t) / max(1, len(clean)), 2
    )
    listed = [q for q in qs if q.set == "zh-listed"]
    found = [q for q in listed if score(q)[1] >= t]
    out["recall_zh_listed"] = round(len(found) / max(1, len(listed)), 4)
    by_form: dict[str, list[int]] = {}
    for q in listed:
        by_form.setdefault(q.form, [0, 0])
        by_form[q.form][0] += score(q)[1] >= t
        by_form[q.form][1] += 1
    out["recall_by_form"] = {f: round(a / b, 3) for f, (a, b) in sorted(by_form.items())}
    zh = [q for q in qs if q.set in ("zh-listed", "zh-clean")]
    alerted = [q for q in zh if score(q)[0] >= t]
    right = sum(1 for q in alerted if score(q)[1] >= t)
    out["precision_zh"] = round(right / max(1, len(alerted)), 4)
    return out


def false_alerts(qs: list[Query], t: float) -> list[dict]:
    """The clean names that alerted at ``t``, highest score first."""
    out = [
        {"query": q.name, "set": q.set, "score": round(q.best, 4), "hit": q.best_hit}
        for q in qs
        if q.set != "zh-listed" and q.best >= t
    ]
    return sorted(out, key=lambda a: -a["score"])


def baseline(index: ListIndex, qs: list[Query]) -> str | None:
    """logic-v2 on every (query, candidate) pair our index proposes; fills
    ``q.baseline``. Returns what ran, or None when it cannot run."""
    py = os.environ.get("BASELINE_PYTHON")
    if not py:
        return None
    rows, owners = [], []
    for n, q in enumerate(qs):
        seen: set[int] = set()
        for schema in ("Person", "Company"):
            name = normalize(q.name, schema)
            for i in index.candidates(name):
                e = index.entries[i]
                if i in seen or e.name.org != (schema == "Company"):
                    continue
                seen.add(i)
                rows.append((q.name, e.text, schema_of(e.party)))
                owners.append((n, e.party.id))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["name1", "name2", "schema"])
            w.writerows(rows)
        console.print(f"logic-v2 on {len(rows):,} pairs …")
        t = time.perf_counter()
        r = subprocess.run(
            [py, str(HERE / "baseline_logic_v2.py"), str(path)],
            capture_output=True, text=True, timeout=7200,
        )  # fmt: skip
    if r.returncode != 0:
        console.print(f"[yellow]baseline did not run: {r.stderr.strip()[-300:]}")
        return None
    for (n, party), s in zip(owners, json.loads(r.stdout), strict=True):
        qs[n].baseline[party] = max(s, qs[n].baseline.get(party, 0.0))
    return f"nomenklatura logic-v2, {len(rows):,} pairs in {time.perf_counter() - t:.0f} s"


def _baseline_score(q: Query) -> tuple[float, float]:
    best = max(q.baseline.values(), default=0.0)
    right = max((s for p, s in q.baseline.items() if p in q.expect), default=0.0)
    return best, right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threshold", type=float, help="the threshold judged (default: the matcher's)")
    ap.add_argument("--alerts", type=int, default=25, help="false alerts listed (0: none)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if args.threshold is not None and not 0 < args.threshold < 1:
        ap.error("--threshold is between 0 and 1")
    t0 = time.perf_counter()
    index = ListIndex(bundled_snapshots())
    console.print(f"{len(index):,} listed names indexed in {time.perf_counter() - t0:.1f} s")
    qs = queries()
    rate = screen_all(index, qs)
    t = args.threshold if args.threshold is not None else index.matcher.threshold
    result = {
        "queries": {
            s: sum(1 for q in qs if q.set == s) for s in ("index", "zh-clean", "zh-listed")
        },
        "listed_names": len(index),
        "screens_per_second": round(rate, 1),
        "ours": figures(qs, t),
        "ours_curve": [figures(qs, c) for c in CURVE],
        "false_alerts": false_alerts(qs, t),
        "missed": [
            {
                "query": q.name,
                "form": q.form,
                "right": round(q.best_right, 4),
                "why": q.right_reason,
                "best": q.best_hit,
            }
            for q in qs
            if q.set == "zh-listed" and q.best_right < t
        ],
    }
    ran = baseline(index, qs)
    if ran:
        result["baseline"] = {
            "source": f"run here: {ran}, candidates from our index",
            "at_its_threshold": figures(qs, BASELINE_THRESHOLD, _baseline_score),
            "curve": [figures(qs, c, _baseline_score) for c in CURVE],
        }
    if args.json:
        json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
        print()
        return
    report(result, args.alerts)


def report(r: dict, alerts: int) -> None:
    out = Console()
    out.print(f"queries {r['queries']}, {r['listed_names']:,} listed names, "
              f"{r['screens_per_second']} screens/s")  # fmt: skip
    t = Table(title="list-level screening")
    for c in ("matcher", "threshold", "FA/100 index", "FA/100 zh-clean", "recall zh", "prec. zh"):
        t.add_column(c)
    rows = [("ours", r["ours"])]
    if "baseline" in r:
        rows.append(("logic-v2", r["baseline"]["at_its_threshold"]))
    for label, f in rows:
        t.add_row(label, f"{f['threshold']:.2f}", f"{f['false_alerts_per_100_index']:.2f}",
                  f"{f['false_alerts_per_100_zh-clean']:.2f}", f"{f['recall_zh_listed']:.3f}",
                  f"{f['precision_zh']:.3f}")  # fmt: skip
    out.print(t)
    out.print("recall by form (ours):", r["ours"]["recall_by_form"])
    c = Table(title="threshold curve (ours | logic-v2)")
    for col in ("t", "FA/100 all clean", "recall zh", "prec. zh"):
        c.add_column(col)
    base = r.get("baseline", {}).get("curve", [None] * len(CURVE))
    for ours, b in zip(r["ours_curve"], base, strict=True):

        def two(k: str, ours=ours, b=b) -> str:
            return f"{ours[k]:.3f}" + (f" | {b[k]:.3f}" if b else "")

        c.add_row(f"{ours['threshold']:.2f}", two("false_alerts_per_100_all_clean"),
                  two("recall_zh_listed"), two("precision_zh"))  # fmt: skip
    out.print(c)
    for a in r["false_alerts"][:alerts]:
        out.print(f"false alert {a['score']:.2f} [{a['set']}] {a['query']!r} → {a['hit']}")
    for m in r["missed"][:alerts]:
        out.print(f"missed ({m['form']}, right {m['right']:.2f}) {m['query']!r}: {m['why']}")


if __name__ == "__main__":
    main()
