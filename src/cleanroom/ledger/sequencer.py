"""Group commit: many concurrent appends, one durable transaction per batch.

Callers submit entry bodies and get a future; a single thread takes what has
queued (up to ``max_batch`` entries, waiting at most ``max_delay`` seconds for
a batch to fill), stores it in one transaction, and resolves every future with
its index only after the commit returned — so an acknowledged append is on
disk.

By default it does not wait: a batch is what queued while the previous
commit ran, so a lone append commits at once and a busy log still commits
hundreds per transaction. (Waiting 2 ms for stragglers added 2 ms to every
feed at low load and, on a process whose GIL the feeds keep busy, doubled the
commit's wall time under load: docs/benchmarks.md, issue 18.)
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

from cleanroom.ledger.errors import LedgerError
from cleanroom.ledger.store import Also, LedgerStore

log = logging.getLogger(__name__)


Item = tuple[bytes, Future[int], Also | None]  # (entry body, its index, a write with it)


class SequencerClosed(LedgerError):
    """An append arriving while the log shuts down."""

    status = 503
    title = "Ledger is shutting down"


class Sequencer:
    """Batches appends into durable transactions on a background thread."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        max_batch: int = 2048,
        max_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)
        self.batches = 0
        self._thread.start()

    def submit(self, body: bytes, also: Also | None = None) -> Future[int]:
        """Queue one canonical entry body (and ``also``, a write committed in the
        same transaction); the future resolves to its index."""
        fut: Future[int] = Future()
        if self._closed:
            fut.set_exception(SequencerClosed("the ledger is shutting down; retry later"))
            return fut
        self._queue.put((body, fut, also))
        return fut

    def append(self, body: bytes, timeout: float | None = 60, also: Also | None = None) -> int:
        return self.submit(body, also).result(timeout)

    async def append_async(self, body: bytes, also: Also | None = None) -> int:
        return await asyncio.wrap_future(self.submit(body, also))

    def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            deadline = time.monotonic() + self.max_delay
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(batch)
        # Drain anything submitted concurrently with close().
        rest = []
        while True:
            try:
                it = self._queue.get_nowait()
            except queue.Empty:
                break
            if it is not None:
                rest.append(it)
        if rest:
            self._commit(rest)

    def _commit(self, batch: list[Item]) -> None:
        try:
            first = self.store.sequence([b for b, _, _ in batch], [a for _, _, a in batch if a])
        except Exception as exc:  # every waiter learns why
            if len(batch) > 1 and any(a for _, _, a in batch):
                # one append's own write may be what failed: each alone, so
                # that it fails only its own append, not the others in the batch
                for item in batch:
                    self._commit([item])
                return
            log.exception("ledger batch of %d failed", len(batch))
            for _, fut, _ in batch:
                fut.set_exception(exc)
            return
        self.batches += 1
        for i, (_, fut, _) in enumerate(batch):
            fut.set_result(first + i)
