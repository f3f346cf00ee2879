"""A node's messages to the other nodes of its clean room, and its handling
of theirs (``cleanroom.cluster.bus``, through the outbox).

- ``events``: a batch stored (each user's first and last sequence number)
  and the engagements the storing node counted (video, region, time, the
  user's likes just before: no user id): another node counts them in its
  popularity and co-engagement counters. Sent by the relay instead (the
  storing node died, or the bus was away), it has no counts: another node
  reads the events from the vault, brings each user's shared state through
  them if it is behind and counts them.
- ``videos``: videos registered or changed: read into the catalogue.
- ``deleted``: a user deleted: whatever this node holds of them goes; the
  trainer forgets them from the model.
- ``model``: a model version published: followers load it now (not at their
  next look)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cleanroom.cluster.bus import Bus, BusError, drop_stream, open_bus
from cleanroom.cluster.outbox import Outbox
from cleanroom.cluster.state import drop_prefix
from cleanroom.foryou import Item, Observed
from cleanroom.vault import UnknownRecord

if TYPE_CHECKING:
    from cleanroom.room.recommender import Recommender

log = logging.getLogger(__name__)
LOOKBACK = 20  # a user's events before a batch, for its co-engagement pairs
RELAY_AFTER_MS = 2_000  # an outbox row not published this long after: the relay sends it
RELAY_S = 1.0


def shared_name(db_url: str) -> str:
    """The name a clean room's nodes share (their database's): its stream, its keys."""
    return hashlib.sha256(db_url.encode()).hexdigest()[:16]


def drop_shared(db_url: str, state_url: str | None, bus_url: str | None) -> None:
    """Remove what a clean room on ``db_url`` keeps in Redis and NATS (its
    keys, its stream): all of it can be rebuilt from the database."""
    name = shared_name(db_url)
    if state_url:
        drop_prefix(state_url, f"cleanroom:{name}:")
    if bus_url and bus_url.startswith("nats:"):
        drop_stream(bus_url, name)


class NodeSync:
    """This node on the bus: it announces what it changed and follows the others."""

    def __init__(self, rec: Recommender, node: str, bus: Bus | None = None) -> None:
        self.rec, self.room, self.node = rec, rec.room, node
        self.outbox = Outbox(rec.room.db)
        name = shared_name(rec.room.db.url)
        self.bus = bus or open_bus(rec.room.config.bus_url, node, name=name)
        self.started_ms = int(time.time() * 1000)
        self.handled = 0  # messages of other nodes applied here
        self.last_handled_ms: int | None = None
        self._stop = threading.Event()
        self._relay = threading.Thread(target=self._relay_loop, name="outbox-relay", daemon=True)

    def start(self) -> NodeSync:
        self.bus.follow(self._handle)
        self._relay.start()
        return self

    # -- announcing ----------------------------------------------------------------

    def events_hook(self) -> tuple[Callable[[Any, dict[str, tuple[int, int]]], None], dict]:
        """An outbox row for a batch of events, written in the batch's own
        transaction (see ``Vault.store_events``), and where its id lands."""
        sent: dict[str, str] = {}

        def also(conn: Any, ranges: dict[str, tuple[int, int]]) -> None:
            payload = {
                "users": {u: list(r) for u, r in ranges.items()},
                "origin": self.node,
                "at_ms": _now(),
            }
            sent["id"] = self.outbox.add(conn, "events", payload)
            sent["payload"] = payload

        return also, sent

    def announce(self, kind: str, payload: dict[str, Any]) -> None:
        payload = {**payload, "origin": self.node, "at_ms": _now()}
        self.publish(self.outbox.write(kind, payload), kind, payload)

    def publish(
        self, msg_id: str, kind: str, payload: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        """Send an outbox row now; if the bus is away, the relay sends it
        later, without ``extra``: what the other nodes can work out again."""
        try:
            self.bus.publish(kind, {**payload, **(extra or {})}, msg_id)
        except BusError as exc:
            log.warning("%s; the outbox relay will send it", exc.message)
            return
        self.outbox.published([msg_id])

    def _relay_loop(self) -> None:
        n = 0
        while not self._stop.wait(RELAY_S):
            try:
                # every node relays (the stream stores a message id once: two
                # nodes sending the same row publish it once), so what a node
                # that died left behind goes out within seconds
                for msg_id, kind, payload in self.outbox.pending(RELAY_AFTER_MS):
                    self.bus.publish(kind, payload, msg_id)
                    self.outbox.published([msg_id])
                n += 1
                if n % 60 == 0:
                    self.outbox.prune()
            except Exception as exc:  # the bus or the database is away: next round
                log.warning("outbox relay: %s", exc)

    # -- following -----------------------------------------------------------------

    def _handle(self, msg: dict[str, Any]) -> None:
        # the node that made the change applied it then (a message the relay
        # sends for a node that died names that node as its origin, not the relay)
        if msg.get("origin", msg.get("node")) == self.node:
            return
        kind = msg.get("kind")
        if kind == "events":
            self._events(msg)
        elif kind == "videos":
            self._videos(msg)
        elif kind == "deleted":
            self.room.principals.forget_verified()  # their tokens: refused from now on
            self.rec.forget_in_model(msg["user"])
        elif kind == "model" and self.rec.cluster is not None:
            self.rec.cluster.follow()
        self.handled += 1
        self.last_handled_ms = _now()

    def _events(self, msg: dict[str, Any]) -> None:
        rec = self.rec
        counting = msg.get("at_ms", 0) >= self.started_ms  # older ones: in the start snapshot
        if "counts" in msg:  # the node that stored them moved the states and counted
            if counting:
                rec.engine.apply_counts(msg["counts"])
            return
        # sent by the relay: the node that stored them may have died before it
        # moved the users' states; read the events from the vault
        grant = rec.read_grant()
        region = rec.region
        for user, (first, last) in msg["users"].items():
            try:
                _, rows = self.room.vault.events_after(grant, user, max(0, first - 1 - LOOKBACK))
            except UnknownRecord:
                continue  # deleted since
            obs = [(n, Observed(user, v, k, ts, w, region)) for n, v, k, ts, w in rows]
            new = [(n, e) for n, e in obs if first <= n <= last]
            if not new:
                continue
            rec.engine.advance(user, new, region, count=False)
            if counting:
                rec.engine.count([(n, e) for n, e in obs if n < first], new)

    def _videos(self, msg: dict[str, Any]) -> None:
        me = self.rec.principal
        grant = self.room.gate.require(me, "read", "Videos", purpose="recommendation")
        videos = self.room.vault.videos(grant, list(msg["ids"]))
        self.rec.engine.add_videos(Item.of(v) for v in videos)

    def lag(self) -> int | None:
        return self.bus.lag()

    def close(self) -> None:
        self._stop.set()
        if self._relay.is_alive():
            self._relay.join(5)
        self.bus.close()


def _now() -> int:
    return int(time.time() * 1000)
