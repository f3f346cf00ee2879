"""The For You engine inside the clean room.

- It reads training data only through the gate: the ``recommender`` service
  principal, purpose ``recommendation``, a jurisdiction-wide grant recorded on
  the ledger; the model's lineage (a commitment to the snapshot, its record
  count, the jurisdiction and the grant's decision) goes on the ledger as a
  ``model.trained`` entry.
- Ingested events reach it after they are stored, through a gate decision of
  their own, and change the user's next feed at once.
- A deleted user is forgotten by the model (exact downdate) through the
  vault's deletion hook; each model change is a ``model.updated`` entry.
- Every feed page served is a ``feed.served`` entry (digests only).
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from typing import TYPE_CHECKING, Any

from cleanroom.audit.topics import TopicMap, from_coengagement, from_tags
from cleanroom.cluster.exposure import NodeExposure
from cleanroom.cluster.nodes import default_node_name
from cleanroom.cluster.records import DatabaseRecords
from cleanroom.cluster.settings import FeedSettings
from cleanroom.cluster.state import state_store
from cleanroom.foryou import Engine, Item, Observed, RankingConfig, ServedFeed, TrainingSet
from cleanroom.foryou.data import POSITIVE_CODES
from cleanroom.foryou.engine import Counted
from cleanroom.foryou.online import History
from cleanroom.foryou.pool import Boost
from cleanroom.ledger.store import Also
from cleanroom.room.provenance import attest_model, check_lineage
from cleanroom.room.sync import NodeSync, shared_name
from cleanroom.room.trainer import ClusterRole
from cleanroom.storage.errors import CleanroomError
from cleanroom.vault import DecryptionError, Event, Stored, UnknownRecord

if TYPE_CHECKING:
    from cleanroom.room import CleanRoom

BOOST_REFRESH_S = 5.0  # how often a worker rereads the approved boosts
RECORDS_GRANT_S = 300.0  # how long the grant to keep feed records is used before asking again
RETRAIN_CLOSE_WAIT_S = 300.0  # how long closing waits for a retraining to finish
FLUSH_QUIET_S = 0.2  # a model's update after deletions: when none followed for this long
CLUSTER_FLUSH_QUIET_S = 1.0
FLUSH_MAX_S = 5.0  # ... and never later than this after the first
TOPIC_MAX_ITEMS = 200_000  # above this, co-engagement communities are not derived


def _freeze_heap() -> None:
    """Move what bootstrapping built (states, catalog, counters: millions of
    objects) out of the cyclic collector's reach, so a full collection does not
    walk them all while feeds wait (pauses of 100+ ms otherwise)."""
    gc.collect()
    gc.freeze()


class NotReady(CleanroomError):
    """No model is trained yet: the feed is not available."""

    status = 503
    title = "Recommender not ready"


class Recommender:
    """The For You engine inside the clean room: trains on events read through the gate,
    records every served feed and retraining on the ledger."""

    def __init__(
        self, room: CleanRoom, config: RankingConfig | None = None, *, node: str | None = None
    ) -> None:
        self.room = room
        self.settings = FeedSettings(room.db)
        states = state_store(room.config.state_url, prefix=shared_prefix(room))
        # the nodes of a cluster keep served feeds' records in the database,
        # where any node finds any feed (one process alone keeps its latest)
        clustered = bool(room.config.state_url or room.config.bus_url)
        records = DatabaseRecords(room.db, self._seal, self._open) if clustered else None
        self.engine = Engine(config, states=states, records=records)
        # a record in the database is stored with the ledger entry committing to
        # its feed (one transaction, see :meth:`commit`)
        self._records = records
        self.engine.store_records = records is None
        # users' states are the fold of their stored events: read through the gate
        self.engine.history = self._history
        self.engine.history_many = self._histories
        self._boosts_read = 0.0
        self._grant: tuple[float, Any] | None = None
        self._retraining: threading.Thread | None = None
        self.topics: tuple[str, TopicMap] | None = None  # (model version, topics)
        self.ready = threading.Event()
        self.error: str | None = None
        self.trained: dict[str, Any] | None = None
        self._ingest = threading.Lock()
        self._pending: list[tuple[str, list[tuple[int, Observed]]]] = []
        self._flush_timer: threading.Timer | None = None
        self._new_events = 0
        self._flush_from: str | None = None
        self._flush_first = 0.0
        # retrain in the background once this many events arrived since the last
        # training (and at least as many as that training read): models follow
        # the data without retraining on every batch
        self.retrain_after = 50_000
        room.vault.on_delete(self._forget)
        self.engine.accept = self._accept
        # in a cluster: one trainer, every node serving the live model by digest,
        # and (with a bus) every node following what the others changed
        node = node or default_node_name()
        self.cluster = ClusterRole(self, node) if clustered else None
        # what feeds showed, counted per hour and video, kept in the database
        # (every node's and every earlier process's, summed for the oversight body)
        self.exposure = NodeExposure(room.db, node, self.engine)
        self.sync = NodeSync(self, node) if room.config.bus_url else None
        if self.cluster is not None:  # cursors and replays of feeds of earlier models
            self.engine.fetch_model = self.cluster.fetch

    def _accept(self, model: Any) -> None:
        """The deploy check for trained models: its training records are all of
        this site's jurisdiction (the gate's jurisdiction-wide read guarantees
        it; a model trained otherwise is refused, on the record)."""
        lineage = getattr(model, "jurisdictions", None)  # a loaded artifact's
        check_lineage(self.room, lineage or model.data.records_by_region(), model.version)

    @property
    def principal(self) -> Any:
        return self.room.system("recommender")

    @property
    def region(self) -> str:
        return self.room.config.site.jurisdiction

    # -- training ------------------------------------------------------------------

    def training_set(self) -> tuple[TrainingSet, int | None]:
        """Every event and video of this site's jurisdiction, read through the
        gate; and the index of the decision that allowed it (None, and no read,
        when the vault holds no events yet)."""
        gate, vault, me = self.room.gate, self.room.vault, self.principal
        if vault.counts()["events"] == 0:
            return TrainingSet.from_rows([], []), None
        videos = vault.videos(gate.require(me, "read", "Videos", purpose="recommendation"))
        grant = gate.require(me, "read", "Events", purpose="recommendation", all_subjects=True)
        rows = [row for part in vault.iter_events(grant) for row in part]
        items = [Item.of(v) for v in videos]
        users = {r[0] for r in rows}
        data = TrainingSet.from_rows(
            rows,
            items,
            # the vault returned only users of the grant's jurisdiction: that is
            # their region (and the lineage the deploy check verifies)
            regions=dict.fromkeys(users, grant.jurisdiction),
            derived=(f"every user's region is the jurisdiction read ({grant.jurisdiction})",),
        )
        return data, grant.decision

    def start(self, *, background: bool = True) -> Recommender:
        """Read the snapshot, bootstrap the engine, train; in a thread by default
        (feeds answer 503 until the model is live)."""
        if background:
            threading.Thread(target=self._bootstrap, name="foryou-bootstrap", daemon=True).start()
        else:
            self._bootstrap()
        return self

    def _bootstrap(self) -> None:
        try:
            t = time.perf_counter()
            with self._ingest:  # no event is both in the snapshot and pending
                data, decision = self.training_set()
            trainer = self.cluster is None or self.cluster.take_role()
            self.engine.bootstrap(data, train=trainer)
            if self.cluster is not None and not trainer:  # the trainer's model, by digest
                trainer = self.cluster.wait_for_live()
                if trainer:  # (or this node's, if the trainer went away first)
                    self.engine.train(data)
            self.refresh_boosts()
            with self._ingest:
                pending, self._pending = self._pending, []
                for user, events in pending:
                    self.engine.advance(user, events, self.region)
                if trainer:
                    self._record_trained(data, decision, time.perf_counter() - t)
            if self.cluster is not None:
                self.cluster.start()
            self.exposure.start()
            if self.sync is not None:
                self.sync.start()
            _freeze_heap()
            self.ready.set()
        except Exception as exc:  # surfaced by /v1/feed and healthz
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def reconfigure(self, config: RankingConfig) -> None:
        """A newly deployed model configuration (already through the deploy
        check): feeds rank with it at once; the model retrains with its model
        settings in the background (or at the next start, if a training runs)."""
        self.engine.config = config
        if self.ready.is_set() and not self.engine.training:
            self.retrain()

    def retrain(self) -> threading.Thread | None:
        """Full retraining in the background; swapped in atomically when done
        (in a cluster, by the trainer: a follower asks it, and returns None)."""
        if self.cluster is not None and self.cluster.ask_to_retrain():
            return None
        holder: dict[str, Any] = {}

        def load() -> TrainingSet:
            with self._ingest:
                data, decision = self.training_set()
                self._new_events = 0
            holder.update(data=data, decision=decision, t=time.perf_counter())
            return data

        def done(_model: Any) -> None:
            self._record_trained(
                holder["data"], holder["decision"], time.perf_counter() - holder["t"]
            )

        self._retraining = self.engine.retrain_in_background(load, done)
        return self._retraining

    def _record_trained(self, data: TrainingSet, decision: int | None, seconds: float) -> None:
        model = self.engine.model
        if self.cluster is not None:  # every node serves it
            self.cluster.published(model)
        if decision is None:  # nothing was read: an empty model, nothing to record
            self.trained = {"model_version": model.version, "records": 0}
            return
        finished = int(time.time() * 1000)
        attestation = attest_model(
            self.room,
            model_version=model.version,
            config_digest=self.engine.config.digest(),
            snapshot=data.digest(),
            jurisdictions=data.records_by_region(),
            read_decision=decision,
            started_ms=finished - int(seconds * 1000),
            finished_ms=finished,
        )
        entry = {
            "type": "model.trained",
            "v": 1,
            "model_version": model.version,
            "ranking_config": self.engine.config.digest(),
            "training_data": data.digest(),
            "records": len(data.u),
            "users": len(data.users),
            "videos": len(data.items),
            "jurisdiction": self.room.config.site.jurisdiction,
            "read_decision": decision,
            "seconds": round(seconds, 2),
            "at_ms": int(time.time() * 1000),  # live from (it was swapped in just now)
            "attestation": attestation,
        }
        index = self.room.log.append(entry)
        self.trained = {**entry, "index": index}
        # the audits' topic map, off the training path (a large catalogue takes a while)
        threading.Thread(
            target=self._derive_topics, args=(model.version, data), name="topics", daemon=True
        ).start()

    def _derive_topics(self, version: str, data: TrainingSet) -> None:
        try:
            self.topics = (version, topic_map(data))
        except Exception as exc:  # an audit aid: the feed goes on without it
            self.topics = (version, TopicMap({}, f"no topics: {type(exc).__name__}: {exc}"))

    # -- online learning -----------------------------------------------------------

    def read_grant(self) -> Any:
        """The recommender's jurisdiction-wide read of events (decided by the
        gate and recorded, again every few minutes), under which it folds
        users' states and keeps the records of the feeds it served."""
        now = time.monotonic()
        if self._grant is None or now - self._grant[0] > RECORDS_GRANT_S:
            grant = self.room.gate.require(
                self.principal, "read", "Events", purpose="recommendation", all_subjects=True
            )
            self._grant = (now, grant)
        return self._grant[1]

    def _seal(self, user: str, table: str, row: str, data: bytes) -> bytes:
        return self.room.vault.seal_kept(self.read_grant(), user, table, row, data)

    def _open(self, user: str, table: str, row: str, blob: bytes) -> bytes:
        try:
            return self.room.vault.open_kept(self.read_grant(), user, table, row, blob)
        except (UnknownRecord, DecryptionError) as exc:  # the user is gone
            raise KeyError(user) from exc

    def _history(self, user: str, after: int) -> History:
        """A user's stored events after a sequence number and their feed
        setting, read through the gate (a user the vault does not hold has none)."""
        # under the recorded jurisdiction-wide read (a decision per fold would
        # put one ledger entry on every first feed of a user after a restart)
        return self._histories({user: after})[user]

    def _histories(self, afters: dict[str, int]) -> dict[str, History]:
        """Several users' events after their sequence numbers, in one read."""
        return user_histories(self.room, self.read_grant(), self.settings, afters)

    def store(self, grant: Any, events: list[Event]) -> Stored:
        """Store a batch of events in the vault and learn from it at once; in a
        cluster its announcement commits with it and goes to the other nodes."""
        also, sent = self.sync.events_hook() if self.sync is not None else (None, {})
        counted: list[Counted] = []
        with self._ingest:
            stored = self.room.vault.store_events(grant, events, also=also)
            if stored.count:  # 0: the same batch again, stored before (and learnt from then)
                self.observe(events, stored, counted)
        if "id" in sent and self.sync is not None:
            # the other nodes count what this node counted (no read of the vault)
            self.sync.publish(sent["id"], "events", sent["payload"], {"counts": counted})
        return stored

    def observe(
        self, events: list[Event], stored: Stored, counted: list[Counted] | None = None
    ) -> int:
        """Learn from stored events (called by :meth:`store`), each user's
        in the order the vault numbered them: the gate decides the
        recommender's read of them first. The engagements counted are
        appended to ``counted``."""
        if not events:
            return 0
        self.room.gate.require(
            self.principal,
            "read",
            "Events",
            purpose="recommendation",
            subjects=sorted({e.user for e in events}),
        )
        by_user: dict[str, list[tuple[int, Observed]]] = {}
        for e in events:
            mine = by_user.setdefault(e.user, [])
            seq = stored.ranges[e.user][0] + len(mine)
            mine.append((seq, Observed(e.user, e.video, e.kind, e.ts_ms, e.watch_ms, self.region)))
        if not self.ready.is_set():
            self._pending.extend(by_user.items())
            return len(events)
        n = self.engine.advance_many(by_user, self.region, counted=counted)
        self._new_events += n
        last = self.trained["records"] if self.trained else 0
        if self._new_events >= max(self.retrain_after, last) and not self.engine.training:
            self._new_events = 0
            threading.Thread(target=self._retrain_quietly, daemon=True).start()
        return n

    def _retrain_quietly(self) -> None:
        with contextlib.suppress(CleanroomError):  # one is already running
            self.retrain()

    def add_videos(self, videos: list[Any]) -> None:
        self.engine.add_videos(Item.of(v) for v in videos)
        if self.sync is not None and videos:
            self.sync.announce("videos", {"ids": [v.id for v in videos]})

    # -- serving -------------------------------------------------------------------

    def refresh_boosts(self) -> None:
        """Apply the approved boosts (after a review here, and every few
        seconds, so that every worker process follows the registry)."""
        self._boosts_read = time.monotonic()
        self.engine.set_boosts(
            tuple(
                Boost(b["id"], b["video"], b["factor"], b["label"], b["declared_by"],
                      b["reason"], b["start_ms"], b["end_ms"], tuple(b["regions"]))
                for b in self.room.boosts.approved()
            )
        )  # fmt: skip

    def serve(self, user: str, **how: Any) -> ServedFeed:
        """A feed page for ``user``, not yet committed (see :meth:`feed`)."""
        if not self.ready.is_set():
            raise NotReady(
                self.error or "the model is still training",
                hint="retry in a few seconds" if not self.error else None,
            )
        if time.monotonic() - self._boosts_read > BOOST_REFRESH_S:
            self.refresh_boosts()
        return self.engine.feed(user, region=self.region, **how)

    def feed(self, user: str, **how: Any) -> tuple[ServedFeed, int]:
        """A feed page for ``user`` and the ledger index of its commitment
        (durable before the feed is returned)."""
        served = self.serve(user, **how)
        write = self._record_write(served)
        index = self.room.log.append(served.entry, also=write)
        self._committed(served, write)
        return served, index

    async def commit(self, served: ServedFeed, body: bytes) -> int:
        """Commit a page served by :meth:`serve` (its entry's canonical ``body``)
        to the ledger, and a fresh feed's record with it where records are in
        the database; the entry's index, once durable."""
        write = self._record_write(served)
        index = await self.room.log.append_body_async(body, also=write)
        self._committed(served, write)
        return index

    def _record_write(self, served: ServedFeed) -> Also | None:
        if self._records is None or not served.fresh:
            return None  # (kept by the engine)
        return self._records.writer(served.record)

    def _committed(self, served: ServedFeed, write: Also | None) -> None:
        if self._records is not None and write is not None:
            self._records.committed(served.record)

    # -- deletion --------------------------------------------------------------------

    def exposure_rows(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Impressions per model version, ranking configuration, hour and video
        since ``since_ms``: every node's and every earlier process's, summed by
        the database."""
        return self.exposure.rows(since_ms)

    def set_mode(self, user: str, mode: str) -> None:
        """The user's feed setting: kept in the database, applied at once."""
        self.engine.set_mode(user, mode, self.region)  # (checks the mode)
        self.settings.set(user, mode)

    def _forget(self, user: str) -> None:
        self.settings.drop(user)
        self.forget_in_model(user)
        if self.cluster is not None:
            self.cluster.forgotten_here(user)
        if self.sync is not None:
            self.sync.announce("deleted", {"user": user})

    def forget_in_model(self, user: str) -> None:
        """Forget a user: their state, records, and (where this node holds the
        training rows) their rows in the model, recorded when flushed."""
        before = self.engine.live_version
        out = self.engine.forget(user, refresh=False)
        if out["model_updated"]:
            self._schedule_flush(before)

    def _schedule_flush(self, before: str | None) -> None:
        """Recompute the model's derived parts shortly after the last deletion
        (batch orders delete many users in a row) and record the new version;
        no later than a few seconds after the first one waiting (in a cluster,
        each version is an artifact every node loads: deletions are batched
        over a second, and at most ``FLUSH_MAX_S``)."""
        quiet = FLUSH_QUIET_S if self.cluster is None else CLUSTER_FLUSH_QUIET_S
        with self._ingest:
            now = time.monotonic()
            if self._flush_timer is not None:
                if now - self._flush_first > FLUSH_MAX_S:
                    return  # the flush waiting will take this deletion too
                self._flush_timer.cancel()
                before = self._flush_from
            else:
                self._flush_first = now
            self._flush_from = before

            def run() -> None:
                after = self.engine.flush()
                self.room.log.append(
                    {
                        "type": "model.updated",
                        "v": 1,
                        "reason": "deletion",
                        "from_version": self._flush_from,
                        "model_version": after,
                        "forgotten_users": len(self.engine.model.gone),
                        "at_ms": int(time.time() * 1000),
                    }
                )
                if self.cluster is not None:
                    self.cluster.published(self.engine.model)
                self._flush_timer = None

            self._flush_timer = threading.Timer(quiet, run)
            self._flush_timer.daemon = True
            self._flush_timer.start()

    def bus_status(self) -> dict[str, Any]:
        """The event bus this node follows and how far behind it is (none yet
        in the embedded default: every event is learnt in this process)."""
        if self.sync is None:
            return {"url": None, "lag": 0}
        return {
            "url": self.room.config.bus_url,
            "lag": self.sync.lag(),  # messages not yet delivered to this node
            "handled": self.sync.handled,  # other nodes' messages applied here
            "last_handled_ms": self.sync.last_handled_ms,
        }

    def report(self) -> dict[str, Any]:
        """What this node's heartbeat says of the recommender."""
        states = self.engine.states
        return {
            "model": self.engine.live_version,
            "ready": self.ready.is_set(),
            "error": self.error,
            "bus": self.bus_status(),
            "state_store": "redis" if hasattr(states, "health") else "process",
            "feeds_served": self.engine.feeds_served,
        }

    def close(self) -> None:
        # a retraining under way finishes first: a model that went live has its
        # lineage on the ledger before the ledger closes
        if self._retraining is not None and self._retraining.is_alive():
            self._retraining.join(RETRAIN_CLOSE_WAIT_S)
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer.function()  # type: ignore[attr-defined]
        if self.sync is not None:
            self.sync.close()
        if self.cluster is not None:
            self.cluster.close()
        self.exposure.close()
        closing = getattr(self.engine.states, "close", None)
        if closing is not None:  # a shared store's connections
            closing()


def user_histories(
    room: CleanRoom, grant: Any, settings: FeedSettings, afters: dict[str, int]
) -> dict[str, History]:
    """Users' stored events after their sequence numbers, in one read under
    ``grant``, and (for a fold from the start) their feed setting; a user the
    vault does not hold has none."""
    found = room.vault.events_after_many(grant, afters)
    region = room.config.site.jurisdiction
    out = {}
    for user, after in afters.items():
        if user not in found:
            out[user] = History(0, [], exists=False)
            continue
        through, rows = found[user]
        events = [(n, Observed(user, v, k, ts, w, region)) for n, v, k, ts, w in rows]
        # the setting matters to a fold from the start (a later fold keeps the state's)
        out[user] = History(through, events, settings.get(user) if after == 0 else None)
    return out


def shared_prefix(room: CleanRoom) -> str:
    """The key prefix of this clean room in a shared store: its nodes share
    the database, so they share it; two clean rooms on one Redis do not."""
    return f"cleanroom:{shared_name(room.db.url)}:"


def topic_map(data: TrainingSet) -> TopicMap:
    """The catalogue's topics for audits: the platform's tags when it has any,
    else communities of co-engagement among the positive engagements trained
    on (aggregates over many users; the map names the source)."""
    tagged = [(v, it.topics) for v, it in data.catalog.items()]
    if any(tags for _, tags in tagged):
        return from_tags(tagged)
    if len(data.items) > TOPIC_MAX_ITEMS:
        return TopicMap({}, f"no topics: more than {TOPIC_MAX_ITEMS:,} untagged videos")
    pos = POSITIVE_CODES[data.code]
    return from_coengagement(data.u[pos], data.i[pos], data.items)
