"""A running log: sequencer, background integration, witness cosigning.

``Log`` is what a server process holds. Appends go through the group-commit
sequencer; an integrator thread folds new entries (from this and any other
process) into the tree and signs a checkpoint every ``interval`` seconds, or
sooner when someone waits for one; a publisher thread asks the configured
witnesses to cosign each new checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from cleanroom.ledger.entries import encode_entry
from cleanroom.ledger.errors import ConflictError, LedgerError
from cleanroom.ledger.note import Signer
from cleanroom.ledger.sequencer import Sequencer
from cleanroom.ledger.store import Also, LedgerStore, SignedCheckpoint
from cleanroom.ledger.witness import WitnessEndpoint, request_cosignature
from cleanroom.storage import Database

log = logging.getLogger(__name__)


# The longest wait before asking a failing witness again.
WITNESS_MAX_BACKOFF_S = 60.0


class Log:
    """One transparency log served by this process."""

    def __init__(
        self,
        db: Database,
        origin: str,
        signer: Signer,
        *,
        witnesses: list[WitnessEndpoint] | None = None,
        interval: float = 0.1,
        max_batch: int = 2048,
        max_delay: float = 0.0,
    ) -> None:
        self.store = LedgerStore(db, origin, signer)
        self.witnesses = list(witnesses or [])
        self.interval = interval
        # whether this process integrates in the background (of several
        # processes on one database, one does: the others only sequence, and
        # wait for its checkpoints; the compare-and-swap keeps a second one safe)
        self.integrating = True
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._wake = threading.Event()
        self._published = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sequencer: Sequencer | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, background: bool = True) -> Log:
        self.store.init()
        # Integration runs every ``interval`` (not after every batch): it shares the
        # database's write lock with sequencing, so fewer, larger integrations
        # leave more room for appends.
        self.sequencer = Sequencer(self.store, max_batch=self._max_batch, max_delay=self._max_delay)
        if background:
            self._spawn(self._integrate_loop, "ledger-integrator")
            if self.witnesses:
                self._spawn(self._witness_loop, "ledger-witnesses")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        if self.sequencer is not None:
            self.sequencer.close()
        self._stop.set()
        self._wake.set()
        with self._published:
            self._published.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ appends

    def _seq(self) -> Sequencer:
        if self.sequencer is None:
            raise LedgerError("the log is not started")
        return self.sequencer

    def append(self, entry: dict[str, Any], also: Also | None = None) -> int:
        """Validate, canonicalise and durably append one entry (and ``also``, a
        write in the same transaction); returns its index."""
        return self._seq().append(encode_entry(entry), also=also)

    def append_body(self, body: bytes, also: Also | None = None) -> int:
        return self._seq().append(body, also=also)

    async def append_body_async(self, body: bytes, also: Also | None = None) -> int:
        return await self._seq().append_async(body, also)

    def append_many(self, bodies: list[bytes], chunk: int = 20_000) -> list[int]:
        """Bulk append of canonical bodies, in large transactions; returns the indices."""
        out: list[int] = []
        for i in range(0, len(bodies), chunk):
            part = bodies[i : i + chunk]
            first = self.store.sequence(part)
            out.extend(range(first, first + len(part)))
        self._wake.set()
        return out

    # ------------------------------------------------------------------ publication

    def integrate(self) -> SignedCheckpoint | None:
        """Integrate everything sequenced so far, now (also used without threads)."""
        newest: SignedCheckpoint | None = None
        while True:
            try:
                cp = self.store.integrate()
            except ConflictError:
                continue  # another process integrated first; look again
            if cp is None:
                break
            newest = cp
        if newest is not None:
            with self._published:
                self._published.notify_all()
        return newest

    def wait_for(self, index: int, timeout: float = 10.0) -> SignedCheckpoint:
        """Block until a signed checkpoint covers entry ``index``."""
        deadline = time.monotonic() + timeout
        while True:
            cp = self.store.latest()
            if cp.size > index:
                return cp
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LedgerError(f"entry {index} not in a checkpoint after {timeout} s")
            self._wake.set()
            with self._published:
                self._published.wait(min(remaining, self.interval))

    def _integrate_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            started = time.monotonic()
            try:
                if self.integrating:
                    self.integrate()
                self.last_error = None
            except Exception as exc:  # keep serving; report on /healthz
                self.last_error = f"integration failed: {exc}"
                log.exception("integration failed")
            # Pace: at most one integration per interval, even when woken early.
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _witness_loop(self) -> None:
        """Ask every witness to cosign each new checkpoint. A witness that fails
        is asked again after a growing wait (0.5 s doubling up to
        ``WITNESS_MAX_BACKOFF_S``), and its failures are logged at the 1st, 2nd,
        4th, 8th… time, not at every try."""
        failures: dict[str, int] = {}
        retry_at: dict[str, float] = {}
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                cp = self.store.latest()
                for w in self.witnesses:
                    name = w.verifier.name
                    if self.store.witness_size(name) == cp.size:
                        continue  # already cosigned (by this or another process)
                    if time.monotonic() < retry_at.get(name, 0.0):
                        continue
                    try:
                        self.cosign(client, w, cp)
                        if failures.pop(name, 0):
                            log.warning("witness %s: cosigning again", name)
                    except Exception as exc:
                        n = failures[name] = failures.get(name, 0) + 1
                        wait = min(WITNESS_MAX_BACKOFF_S, 0.5 * 2 ** (n - 1))
                        retry_at[name] = time.monotonic() + wait
                        self.last_error = f"witness {name}: {exc}"
                        if n & (n - 1) == 0:
                            log.warning("witness %s (failure %d, next try in %.1f s): %s",
                                        name, n, wait, exc)  # fmt: skip
                with self._published:
                    self._published.wait(self.interval * 5)

    def cosign(self, client: httpx.Client, w: WitnessEndpoint, cp: SignedCheckpoint) -> str:
        """Ask witness ``w`` to cosign checkpoint ``cp`` and store its cosignature."""
        old = self.store.witness_size(w.verifier.name)
        if old > cp.size:
            old = 0  # our record is ahead (restored backup?): let the witness tell us
        lines, size = request_cosignature(
            client, w, cp.note, old, lambda o: self.store.consistency_proof(o, cp.size)
        )
        self.store.add_cosignatures(cp.size, cp.root, lines)
        self.store.set_witness_size(w.verifier.name, size)
        return lines
