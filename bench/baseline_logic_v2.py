"""Score labelled name pairs (a CSV with name1, name2 and optionally schema,
Company by default) with OpenSanctions' logic-v2 matcher
(the baseline of bench_screen.py). Runs under a Python that has nomenklatura
installed — not the project's: nomenklatura is a baseline, not a dependency.

    python3 -m venv /tmp/nk && /tmp/nk/bin/pip install nomenklatura
    BASELINE_PYTHON=/tmp/nk/bin/python .venv/bin/python bench/bench_screen.py

Prints one JSON list of scores, in the order of the CSV's rows.
"""

from __future__ import annotations

import csv
import json
import sys

from followthemoney import model
from nomenklatura.matching import get_algorithm
from nomenklatura.matching.types import ScoringConfig


def main(path: str) -> None:
    algorithm = get_algorithm("logic-v2")
    if algorithm is None:
        raise SystemExit("nomenklatura has no logic-v2 matcher")
    config = ScoringConfig.defaults()
    scores = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f)):
            schema = row.get("schema") or "Company"
            left = model.make_entity(schema)
            left.id = f"l{n}"
            left.add("name", row["name1"])
            right = model.make_entity(schema)
            right.id = f"r{n}"
            right.add("name", row["name2"])
            scores.append(algorithm.compare(left, right, config).score)
    json.dump(scores, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
