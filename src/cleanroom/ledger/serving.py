"""The one way to serve an app: an ASGI app (a witness, a clean room's app, a
worker's private listener) from a thread of this process, on a free port if
none is given (``serve_in_thread``), or a ``cleanroom serve`` / ``witness
serve`` in a child process (``ServerProcess``: the demo, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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


class ServerProcess:
    """A ``cleanroom serve`` (or ``witness serve``) child process on a free port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        witness_only: bool = False,
        workers: int = 1,
        env: dict[str, str] | None = None,
        node: str | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        verb = ["witness", "serve"] if witness_only else ["serve", "--workers", str(workers)]
        if node is not None:
            verb += ["--node", node]
        cmd = [
            sys.executable,
            "-m",
            "cleanroom.cli",
            "--data-dir",
            str(self.data_dir),
            *verb,
            "--port",
            str(self.port),
        ]
        self.log_path = self.data_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s: {self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, not a shutdown)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
