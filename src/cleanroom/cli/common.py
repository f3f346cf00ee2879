"""What every verb group of the ``cleanroom`` command shares: the data
directory chosen with ``--data-dir``, one-line failures, tables, reading a
file, and the log or the clean room opened for one command."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanroom.errors import CleanroomError
from cleanroom.room.config import DataDir

if TYPE_CHECKING:
    from cleanroom.ledger.log import Log


class State:
    """The options given before the verb (the data directory)."""

    data_dir: str | None = None


state = State()


def data_directory() -> DataDir:
    return DataDir(state.data_dir)


def fail(message: str) -> None:
    raise CleanroomError(message)


def table_console() -> Any:
    """A rich console for tables: the terminal's width on a terminal; piped or
    redirected, wide enough that no cell is cut."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=100_000)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CleanroomError(f"cannot read the {what} {path}: {e.strerror}") from None


@contextmanager
def open_log() -> Iterator[Log]:
    """The data directory's log, for one command: no threads, no migrations."""
    from cleanroom.ledger.log import Log

    dd = data_directory()
    config = dd.load()
    db = dd.database(config)
    try:
        yield Log(db, config.origin, dd.read_key("log"))
    finally:
        db.dispose()


@contextmanager
def open_room() -> Iterator[Any]:
    """The clean room with its log sequencing (appends are durable, and
    published before the command returns)."""
    from cleanroom.room import CleanRoom

    room = CleanRoom.open(data_directory(), background=False)
    try:
        yield room
        room.log.integrate()
    finally:
        room.close()


def run_server(
    dd: DataDir, factory: str, host: str, port: int, workers: int = 1, node: str | None = None
) -> None:
    """uvicorn on an app factory that finds the data directory (and the node's
    name and address) in the environment."""
    import uvicorn

    config = dd.load()
    if workers > 1 and not (config.state_url and config.bus_url):
        fail(
            f"--workers {workers} starts {workers} nodes, and nodes share a state store and a "
            "bus: cleanroom init --state redis://HOST:PORT/N --bus nats://HOST:PORT"
        )
    os.environ["CLEANROOM_DATA_DIR"] = str(dd.path)
    os.environ["CLEANROOM_NODE_URL"] = f"http://{host}:{port}"
    if node is not None:
        os.environ["CLEANROOM_NODE"] = node
    if workers > 1:  # each worker process is a node of its own
        os.environ["CLEANROOM_WORKERS"] = str(workers)
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="warning")
