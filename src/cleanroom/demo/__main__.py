"""``python -m cleanroom.demo [--keep] [--serve]`` (what ``cleanroom demo`` runs)."""

from __future__ import annotations

import argparse

from cleanroom.demo.story import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(prog="cleanroom demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the demo data directory")
    parser.add_argument(
        "--serve", action="store_true", help="then keep the console running (until Ctrl-C)"
    )
    args = parser.parse_args()
    run_demo(keep=args.keep or args.serve, serve=args.serve)


if __name__ == "__main__":
    main()
