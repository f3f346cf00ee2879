"""The ``cleanroom`` command line: ``main`` (the console script) runs ``app``;
one module per verb group, what they share in ``common``."""

from cleanroom.cli.main import app, main

__all__ = ["app", "main"]
