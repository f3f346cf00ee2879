"""The For You engine on data it was not tuned on, against every baseline of
``cleanroom eval`` (each tuned on ``valid`` in the same run).

The data sets, all in 'user item label' form and written to a temporary
directory as a new user would hand them to ``cleanroom eval --train --valid
--test``:

- ``kuairec-small-random``, ``kuairand-small-random``: the bundled data's
  rows pooled and split again per user at random (70 / 10 / 20, seeded) —
  a split the shipped constants never saw, and not a temporal one;
- ``synthetic-7``: the tagged synthetic catalogue of ``bench_personas`` under
  another seed (a watch to the end is label 1, a skip 0), split the same way.
  Synthetic, said so; its tags do not travel in this format.

    .venv/bin/python bench/bench_unseen.py [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from bench_personas import synthetic
from cleanroom.foryou.data import POSITIVE_CODES
from cleanroom.foryou.evaluate import run, table
from cleanroom.room.datasets import interactions

SHARES = (0.7, 0.1)  # train, valid; the rest is test


def bundled_rows(name: str) -> list[tuple[str, str, str]]:
    """Every line of the bundled data set, whatever split it was in."""
    return [(x.user, x.item, "1" if x.positive else "0") for x in interactions(name)]


def synthetic_rows(seed: int) -> list[tuple[str, str, str]]:
    data = synthetic(seed=seed)
    return [
        (data.users[u], data.items[i], "1" if POSITIVE_CODES[c] else "0")
        for u, i, c in zip(data.u, data.i, data.code, strict=True)
    ]


def write_split(rows: list[tuple[str, str, str]], where: Path, seed: int) -> dict[str, Path]:
    """Each user's rows shuffled (seeded) and cut 70 / 10 / 20."""
    rng = random.Random(seed)
    by_user: dict[str, list[tuple[str, str, str]]] = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    parts: dict[str, list[tuple[str, str, str]]] = {"train": [], "valid": [], "test": []}
    for mine in by_user.values():
        rng.shuffle(mine)
        a, b = int(len(mine) * SHARES[0]), int(len(mine) * sum(SHARES))
        parts["train"] += mine[:a]
        parts["valid"] += mine[a:b]
        parts["test"] += mine[b:]
    where.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, got in parts.items():
        files[part] = where / f"{part}.txt"
        files[part].write_text("".join(f"{u} {i} {label}\n" for u, i, label in got))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["kuairec", "kuairand", "synthetic"], action="append")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    want = args.only or ["kuairec", "kuairand", "synthetic"]
    with tempfile.TemporaryDirectory() as tmp:
        sources = []
        for short, name, rows in (
            ("kuairec", "kuairec-small-random", lambda: bundled_rows("kuairec-small")),
            ("kuairand", "kuairand-small-random", lambda: bundled_rows("kuairand-small")),
            ("synthetic", "synthetic-7", lambda: synthetic_rows(7)),
        ):
            if short in want:
                sources.append((name, write_split(rows(), Path(tmp) / name, seed=1)))
        results = run(sources)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    from rich.console import Console

    for r in results:
        Console().print(table(r))


if __name__ == "__main__":
    main()
