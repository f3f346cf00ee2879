"""Build the labelled set of Chinese company name pairs (bench/data/zh_company_pairs.csv)
from the hand-written company table bench/data/zh_companies.tsv.

- match: two names of the same company (Chinese script, pinyin, English,
  brand, acronym, with or without place prefix and legal form);
- no match: a subsidiary against its parent (a different legal person; pairs where
  one English name is the other plus a legal form or word are left out), and
  different companies whose names share a place, "China", or generic words
  (hard negatives), plus random pairs of different companies.

Deterministic (fixed seed); the CSV is committed so the set does not move.

    .venv/bin/python bench/make_zh_pairs.py
"""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "data" / "zh_companies.tsv"
OUT = HERE / "data" / "zh_company_pairs.csv"


def companies() -> list[tuple[str, str, list[str]]]:
    out = []
    for line in SRC.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ident, parent, names = line.split("\t")
        out.append((ident, parent, names.split("|")))
    return out


def tokens(name: str) -> set[str]:
    return {w.lower().strip(".,()") for w in name.split()}


LEGAL_WORDS = {"co", "ltd", "limited", "company", "corporation", "corp", "inc", "group"}


def same_words(a: str, b: str) -> bool:
    """Whether one English name's words (legal forms aside) contain the other's:
    a subsidiary named like that ("CNOOC Limited" under "CNOOC", "Tencent
    Technology" under "Tencent") cannot be told from its parent by name, so the
    pair is left out rather than labelled either way."""
    if not (a.isascii() and b.isascii()):
        return False
    wa = {w.lower().strip(".,()") for w in a.split()} - LEGAL_WORDS
    wb = {w.lower().strip(".,()") for w in b.split()} - LEGAL_WORDS
    return wa <= wb or wb <= wa


def main() -> None:
    rng = random.Random(20261129)
    rows: list[tuple[str, str, str, str]] = []
    comps = companies()
    by_id = {c[0]: c for c in comps}
    for ident, _, names in comps:  # positives: up to 4 pairs per company
        pairs = list(itertools.combinations(names, 2))
        rng.shuffle(pairs)
        for a, b in pairs[:4]:
            rows.append((a, b, "true", f"same:{ident}"))
    for ident, parent, names in comps:  # subsidiary vs parent
        if parent != "-":
            pnames = by_id[parent][2]
            for a in rng.sample(names, min(2, len(names))):
                b = rng.choice(pnames)
                if same_words(a, b):
                    continue  # one name is the other plus a legal form or a word: ambiguous
                rows.append((a, b, "false", f"subsidiary:{ident}<{parent}"))
    hard = []  # different companies sharing a word of their English names
    for (ia, pa, na), (ib, pb, nb) in itertools.combinations(comps, 2):
        if ia in (pb,) or ib in (pa,) or (pa != "-" and pa == pb):
            continue
        for a in na:
            for b in nb:
                if (
                    a.isascii()
                    and b.isascii()
                    and tokens(a) & tokens(b) - {"co.,", "ltd.", "co.", "ltd"}
                ):
                    hard.append((a, b, "false", f"different:{ia}/{ib}"))
    rng.shuffle(hard)
    rows.extend(hard[:90])
    chinese = [(i, n) for i, _, ns in comps for n in ns if not n.isascii()]
    for _ in range(40):  # different companies, both in Chinese script
        (ia, a), (ib, b) = rng.sample(chinese, 2)
        if ia != ib and by_id[ia][1] != ib and by_id[ib][1] != ia:
            rows.append((a, b, "false", f"different:{ia}/{ib}"))
    seen = set()
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name1", "name2", "is_match", "category"])
        for r in rows:
            if (r[0], r[1]) not in seen:
                seen.add((r[0], r[1]))
                w.writerow(r)
    print(f"wrote {len(seen)} pairs to {OUT}")


if __name__ == "__main__":
    main()
