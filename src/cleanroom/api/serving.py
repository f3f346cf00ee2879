"""The clean room's app served from a thread of this process (the demo's
last steps, benchmarks): ``serve_in_thread`` around ``create_app``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cleanroom.ledger.serving import serve_in_thread


class InProcessServer:
    """The clean room's app served from this process (uvicorn in a thread),
    entered once its first model is live."""

    def __init__(self, data_dir: Path) -> None:
        from cleanroom.api import create_app

        self.app = create_app(str(data_dir))

    def __enter__(self) -> InProcessServer:
        self.served = serve_in_thread(self.app, name="cleanroom", wait_s=300)
        self.url = self.served.url
        deadline = time.monotonic() + 300
        while not httpx.get(self.url + "/v1/feed/model", timeout=30).json().get("ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process server's model did not become ready")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.stop(300)  # its shutdown closes the clean room (after a retraining)
