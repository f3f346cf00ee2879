"""What every verb group of the ``cleanroom`` command shares: the data
directory chosen with ``--data-dir``, one-line failures, tables, reading a
file, and the log or the clean room opened for one command."""

from __future__ import annotations

import logging
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
    """The data directory's log, for one command: no threads; the ledger's own
    migrations applied (a data directory from before the search index)."""
    from cleanroom.ledger import schema
    from cleanroom.ledger.log import Log
    from cleanroom.storage import migrate

    dd = data_directory()
    config = dd.load()
    db = dd.database(config)
    try:
        migrate(db, schema.MIGRATIONS)
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


def require_shared(config: Any) -> None:
    """The state store and the bus the configuration names answer, or one
    line and exit code 2 (a node cannot serve without them)."""
    from cleanroom.cluster.bus import bus_health
    from cleanroom.cluster.state import RedisStates

    if config.state_url:
        store = RedisStates(config.state_url)
        try:
            health = store.health()
        finally:
            store.close()
        if not health["ok"]:
            fail(f"the state store at {health['url']} does not answer: {health['error']}")
    if config.bus_url:
        health = bus_health(config.bus_url)
        if not health["ok"]:
            fail(f"the event bus at {config.bus_url} does not answer: {health['error']}")


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
    require_shared(config)
    os.environ["CLEANROOM_DATA_DIR"] = str(dd.path)
    os.environ["CLEANROOM_NODE_URL"] = f"http://{host}:{port}"
    if node is not None:
        os.environ["CLEANROOM_NODE"] = node
    if workers > 1:  # each worker process is a node of its own
        os.environ["CLEANROOM_WORKERS"] = str(workers)
    base = f"http://{host}:{port}"
    if factory.endswith("app_from_env"):
        sys.stderr.write(
            f"serving {dd.path} at {base}\n  API {base}/v1/ (OpenAPI {base}/openapi.json, "
            f"docs {base}/docs)\n  log {base}/log/checkpoint\n  console {base}/console\n"
        )
    else:
        sys.stderr.write(f"serving the witness of {dd.path} at {base}/witness/\n")
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S",
                        level=logging.WARNING, stream=sys.stderr)  # fmt: skip
    logging.getLogger("cleanroom.access").setLevel(logging.INFO)
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="warning")
