"""Serving an ASGI app (a witness, a clean room's app, a worker's private
listener) from a thread of this process, on a free port if none is given."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from cleanroom.ledger.errors import LedgerError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A server running in a thread of this process."""

    server: Any  # uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, wait_s: float = 60.0) -> None:
        """Ask it to stop and wait for its shutdown (the app's too) to finish."""
        self.server.should_exit = True
        self.thread.join(wait_s)


def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: str = "auto",
    name: str = "asgi",
    wait_s: float = 30.0,
) -> Served:
    """Start uvicorn on ``app`` in a daemon thread and wait until it listens."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, lifespan=lifespan, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + wait_s  # (the app's start-up runs first)
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LedgerError(f"could not serve on {host}:{port}")
        time.sleep(0.02)
    return Served(server, thread, f"http://{host}:{port}")
