"""``python -m cleanroom.demo [--keep]`` (what ``cleanroom demo`` runs)."""

from __future__ import annotations

import argparse

from cleanroom.demo.story import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(prog="cleanroom demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the demo data directory")
    run_demo(keep=parser.parse_args().keep)


if __name__ == "__main__":
    main()
