"""The worker processes of one multi-process server (`cleanroom serve
--workers N`) as peers. Each keeps the feeds it served in its own memory (with
the user state they were computed from: personal data, never written out), so
a replay request that reaches one worker finds only that worker's feeds. Each
worker therefore also listens on a private loopback port, written to
``run/peers/<pid>`` in the data directory; a worker asked to replay feeds it
does not keep forwards them to its live peers (with the caller's own token:
each peer's gate decides again) while it replays its own — every feed
answered, and every worker busy."""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cleanroom.ledger.serving import Served, serve_in_thread

log = logging.getLogger(__name__)
PEER_HEADER = "X-Cleanroom-Peer"  # a forwarded request: never forwarded again


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Peers:
    """The workers of one server finding each other (a private listener each, announced in the
    data directory) so one request can reach them all."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "run" / "peers"
        self.pid = os.getpid()
        self.served: Served | None = None
        self.url = ""
        self._http = httpx.Client(timeout=600)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="peers")

    def start(self, app: Any) -> Peers:
        # the same app (its state is this worker's), without running its lifespan again
        self.served = serve_in_thread(app, lifespan="off", name="peer-listener")
        self.url = self.served.url
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / str(self.pid)).write_text(self.url)
        return self

    def others(self) -> list[str]:
        """The private URLs of the other live workers."""
        out = []
        for path in sorted(self.dir.glob("*")) if self.dir.exists() else []:
            if not path.name.isdigit() or int(path.name) == self.pid:
                continue
            if _alive(int(path.name)):
                out.append(path.read_text().strip())
            else:
                with contextlib.suppress(OSError):
                    path.unlink()  # a worker that died without saying so
        return out

    def ask(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
        """POST to every other worker; the JSON answers of those that answered."""
        out = []
        for url in self.others():
            try:
                r = self._http.post(url + path, json=body, headers={**headers, PEER_HEADER: "1"})
            except httpx.HTTPError as e:
                log.warning("peer %s did not answer: %s", url, e)
                continue  # gone since it registered
            if r.status_code == 200:
                out.append(r.json())
            else:
                log.warning("peer %s answered %s: %s", url, r.status_code, r.text[:300])
        return out

    def ask_in_background(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Future[list[Any]]:
        """:meth:`ask`, while the caller does its own share of the work."""
        return self._pool.submit(self.ask, path, body, headers)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            (self.dir / str(self.pid)).unlink()
        if self.served is not None:
            self.served.stop(5.0)
        self._pool.shutdown(wait=False)
        self._http.close()
