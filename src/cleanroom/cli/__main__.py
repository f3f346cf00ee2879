"""``python -m cleanroom.cli``: the ``cleanroom`` command."""

from cleanroom.cli.main import main

if __name__ == "__main__":
    main()
