"""The For You engine: the model, the online state and the pool, serving feeds
that can be replayed and forgetting users exactly.

The engine knows nothing of the vault or the ledger: the clean room feeds it
events read through the gate and appends the ``feed.served`` entries it
returns (``ServedFeed.entry``) to the ledger."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cleanroom.foryou.data import ENGAGEMENTS, Item, TrainingSet
from cleanroom.foryou.feed import MODES, FeedItem, Mode, Ranked, compute, items_digest
from cleanroom.foryou.model import Model
from cleanroom.foryou.online import (
    WORLD,
    Counters,
    History,
    Observed,
    States,
    StateStore,
    UserState,
)
from cleanroom.foryou.pool import Boost, Catalog, Pool, horizon, snapshot
from cleanroom.foryou.ranker import RankingConfig
from cleanroom.foryou.records import FeedRecords, MemoryRecords
from cleanroom.foryou.signals import engagement, signal
from cleanroom.foryou.tuning import train_tuned
from cleanroom.storage.errors import CleanroomError

MAX_LIMIT = 100
# an engagement counted: (video, region, time, the user's likes just before it)
Counted = tuple[str, str, int, list[str]]
NOTHING, EVERYTHING = (1, 0), (0, 1 << 62)  # ranges of sequence numbers to count
EXPOSURE_BUCKET_MS = 3_600_000
EXPOSURE_BUCKETS = 24 * 30 * 4  # hours kept (30 days of up to 4 model versions)
DEPTH = 100
# popular videos a pool lists per region (deeper than a feed takes: a user who
# has seen the top of the list is proposed the next ones)
POOL_POPULAR = 1000
_CURSOR = re.compile(r"^([0-9a-f]{32})\.(\d{1,3})$")
_SEED = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FeedError(CleanroomError):
    """A feed request the engine cannot serve as asked."""

    status = 400
    title = "Bad feed request"


class RetrainRunning(CleanroomError):
    """A full retraining is already running (try again when it is done)."""

    status = 409
    title = "Retraining already running"


class CursorExpired(CleanroomError):
    """A feed cursor older than the feeds kept for paging."""

    status = 410
    title = "Feed cursor expired"


class ReplayError(CleanroomError):
    """A served feed that cannot be recomputed (unknown, or its inputs are gone)."""

    status = 409
    title = "Cannot replay feed"


@dataclass
class FeedRecord:
    """The inputs a feed is a function of, kept for paging and replay."""

    feed: str
    user: str
    mode: Mode
    seed: str
    bucket_ms: int
    depth: int
    model_version: str
    config_digest: str
    state: dict[str, Any]
    state_digest: str
    pool: Pool
    # the computed ranking (None in a record read back: recomputed to page)
    ranked: Ranked | None = field(repr=False)
    videos: list[str] = field(default_factory=list, repr=False)  # the ranked list served

    def __post_init__(self) -> None:
        if not self.videos and self.ranked is not None:
            self.videos = self.ranked.videos

    @property
    def list_digest(self) -> str:
        return items_digest(self.videos)

    def to_doc(self) -> dict[str, Any]:
        """The record as a document (the pool by version: stored apart)."""
        return {
            "feed": self.feed,
            "user": self.user,
            "mode": self.mode,
            "seed": self.seed,
            "bucket_ms": self.bucket_ms,
            "depth": self.depth,
            "model_version": self.model_version,
            "config_digest": self.config_digest,
            "state": self.state,
            "state_digest": self.state_digest,
            "pool_version": self.pool.version,
            "videos": self.videos,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], pool: Pool) -> FeedRecord:
        return cls(
            doc["feed"],
            doc["user"],
            doc["mode"],
            doc["seed"],
            doc["bucket_ms"],
            doc["depth"],
            doc["model_version"],
            doc["config_digest"],
            doc["state"],
            doc["state_digest"],
            pool,
            None,
            list(doc["videos"]),
        )


@dataclass
class ServedFeed:
    """One page of a served feed: the record committed to the ledger and the explained items."""

    record: FeedRecord
    offset: int
    items: list[FeedItem]
    next_cursor: str | None
    # its record was made for this page (a new feed, not a cursor's next page):
    # stored by the engine, or by its caller where the engine does not
    fresh: bool = False

    @property
    def entry(self) -> dict[str, Any]:
        """The ledger entry committing to this page: digests, no personal data."""
        r = self.record
        return {
            "type": "feed.served",
            "v": 1,
            "feed": r.feed,
            "mode": r.mode,
            "offset": self.offset,
            "count": len(self.items),
            "items_digest": items_digest(i.video for i in self.items),
            "list_digest": r.list_digest,
            "model_version": r.model_version,
            "ranking_config": r.config_digest,
            "state_digest": r.state_digest,
            "pool_version": r.pool.version,
            "seed": r.seed,
            "time_bucket_ms": r.bucket_ms,
            # the boosts this page applied (labelled in it): the oversight
            # monitor matches each with its approval
            "boosts": sorted({i.boost["id"] for i in self.items if i.boost}),
        }

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "feed": r.feed,
            "mode": r.mode,
            "model_version": r.model_version,
            "pool_version": r.pool.version,
            "state_digest": r.state_digest,
            "offset": self.offset,
            "items": [i.to_dict() for i in self.items],
            "next_cursor": self.next_cursor,
        }


class Engine:
    """The For You engine: trains on the events handed to it, learns online, serves explained
    feeds and replays them bit for bit."""

    def __init__(
        self,
        config: RankingConfig | None = None,
        *,
        bucket_ms: int = 1000,
        pool_interval_ms: int = 1000,
        fresh_window_ms: int = 2 * 86_400_000,
        states: StateStore | None = None,
        records: FeedRecords | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
        keep_records: int = 5_000,
        keep_models: int = 4,
    ) -> None:
        self.config = config or RankingConfig.shipped()
        self.bucket_ms = bucket_ms
        self.pool_interval_ms = pool_interval_ms
        self.fresh_window_ms = fresh_window_ms
        self.states: StateStore = states if states is not None else States()
        # where a user's stored events come from, in their order (the clean room
        # reads them from the vault): with it, a state is the fold of the user's
        # events, rebuilt whenever it is missing or behind; without it (a bare
        # engine), states are what the engine was shown
        self.history: Callable[[str, int], History] | None = None
        # where a model no longer held here is found by its version (a cluster's
        # model store), for cursors and replays of feeds it ranked
        self.fetch_model: Callable[[str], Model | None] | None = None
        # several users' histories after their sequence numbers in one read (a
        # batch's users whose states missed another batch); else one by one
        self.history_many: Callable[[dict[str, int]], dict[str, History]] | None = None
        self.counters = counters or Counters()
        self.catalog = Catalog(fresh_window_ms)
        # impressions per (model version, ranking configuration, hour), per video:
        # all of them, and those labelled as boosted — what exposure reports aggregate
        self.exposure: OrderedDict[tuple[str, str, int], tuple[Counter[str], Counter[str]]] = (
            OrderedDict()
        )
        self.pages_counted = 0  # pages added to the exposure counts (a writer's cue)
        self.boosts: tuple[Boost, ...] = ()
        self.clock = clock
        self._model: Model | None = None
        self._models: OrderedDict[str, Model] = OrderedDict()
        self._keep_models = keep_models
        self._pool: Pool | None = None
        self._pool_counter_version = -1
        self._pool_building = False
        self.records: FeedRecords = records if records is not None else MemoryRecords(keep_records)
        # False where the caller stores each fresh record itself (the clean room
        # does, in the transaction of the ledger entry that commits to the feed)
        self.store_records = True
        self._lock = threading.RLock()
        self._user_locks = [threading.Lock() for _ in range(64)]
        self._forgotten_during_training: set[str] = set()
        self._training = False
        self.feeds_served = 0
        self.accept: Callable[[Model], None] | None = None

    # -- model ---------------------------------------------------------------------

    @property
    def model(self) -> Model:
        if self._model is None:
            raise FeedError("no model is loaded yet", hint="the recommender is still training")
        return self._model

    def swap(self, model: Model) -> None:
        """Make ``model`` the live one, atomically (feeds in flight finish on the
        model they started with). ``accept``, if set, is asked first and may
        refuse the model by raising (the clean room's deploy check)."""
        if self.accept is not None:
            self.accept(model)
        with self._lock:
            for user in self._forgotten_during_training:
                model.forget(user, refresh=False)
            model.refresh()
            self._forgotten_during_training.clear()
            self._model = model
            self._models[model.version] = model
            while len(self._models) > self._keep_models:
                self._models.popitem(last=False)

    def model_of(self, version: str) -> Model | None:
        """The model of ``version``: one held here (the live one and a few
        before it) or, with :attr:`fetch_model`, one fetched by its version
        (verified against it) and held from then on."""
        with self._lock:
            live = self._model
            model = live if live is not None and live.version == version else None
            model = model or self._models.get(version)
        if model is not None or self.fetch_model is None:
            return model
        model = self.fetch_model(version)
        if model is None or model.version != version:
            return None
        with self._lock:
            model = self._models.setdefault(version, model)
            while len(self._models) > self._keep_models:
                self._models.popitem(last=False)
            return model

    def train(self, data: TrainingSet) -> Model:
        """Train on ``data`` (what adapts to it chosen on held-out engagements:
        see ``tuning``) and make the model live."""
        model = train_tuned(self, data)
        self.swap(model)
        return model

    def retrain_in_background(
        self, load: Callable[[], TrainingSet], done: Callable[[Model], None] | None = None
    ) -> threading.Thread:
        """Full retraining in a thread; the new model is swapped in when ready.
        Users forgotten meanwhile are forgotten by the new model before it goes live."""

        def run() -> None:
            try:
                model = train_tuned(self, load())
                self.swap(model)
            finally:
                self._training = False
            if done:
                done(model)

        with self._lock:
            if self._training:
                raise RetrainRunning(
                    "a retraining is already running", hint="its model goes live when done"
                )
            self._training = True
        t = threading.Thread(target=run, name="foryou-retrain", daemon=True)
        t.start()
        return t

    @property
    def live_version(self) -> str | None:
        """The live model's version (None before the first training)."""
        return self._model.version if self._model is not None else None

    @property
    def training(self) -> bool:
        return self._training

    # -- catalog and online learning -------------------------------------------------

    def add_videos(self, items: Iterable[Item]) -> None:
        self.catalog.upsert(list(items))

    def bootstrap(self, data: TrainingSet, *, train: bool = True) -> None:
        """Start from a training snapshot: catalog, user states from their latest
        events (unless the engine has a :attr:`history` to fold them from),
        popularity and co-engagement counters; then train on it."""
        self.add_videos(data.catalog.values())
        order = np.lexsort((data.i, data.ts, data.u))
        events = (
            Observed(
                data.users[data.u[n]],
                data.items[data.i[n]],
                ENGAGEMENTS[data.code[n]],
                int(data.ts[n]),
                0,
                data.regions.get(data.users[data.u[n]], WORLD),
            )
            for n in order
        )
        # without timestamps the order of a user's events means nothing: no
        # co-engagement pairs are learned from it
        self.observe(events, engagements=True, pairs=data.timed, states=self.history is None)
        if train:
            self.train(data)

    def observe(
        self,
        events: Iterable[Observed],
        *,
        engagements: bool = False,
        pairs: bool = True,
        states: bool = True,
    ) -> int:
        """Learn from events at once: the user's state (unless ``states`` is
        false) and the counters change, so the user's next feed reflects them.
        (An engine with a :attr:`history` learns users' events through
        :meth:`advance`, in their stored order.)"""
        n = 0
        liked: dict[str, dict[str, None]] = {}  # users' recent likes, without states
        for e in events:
            eng = e.kind if engagements else engagement(e.kind, e.watch_ms)
            if eng not in ENGAGEMENTS:
                continue
            st = self.states.admit(e.user, e.region) if states else None  # type: ignore[attr-defined]
            item = self.catalog.get(e.video)
            previous: list[str] = []
            if st is not None:
                if pairs and signal(eng) == "positive":
                    previous = list(st.liked)[-5:]
                st.observe(e.video, eng, e.ts_ms, item.creator if item else None)
            elif pairs and signal(eng) == "positive":
                recent = liked.setdefault(e.user, {})
                previous = list(recent)[-5:]
                recent.pop(e.video, None)
                recent[e.video] = None
                if len(recent) > 5:
                    del recent[next(iter(recent))]
            if signal(eng) == "positive":
                self.counters.positive(e.video, e.region, e.ts_ms, previous)
            n += 1
        return n

    def advance(
        self,
        user: str,
        events: list[tuple[int, Observed]],
        region: str = WORLD,
        *,
        count: bool = True,
        counted: list[Counted] | None = None,
    ) -> int:
        """Learn from a user's newly stored events, ``(sequence number, event)``
        in their order: the user's state moves through the last of them (folded
        again from :attr:`history` if it is missing or missed some of the
        user's events) and, with ``count``, the counters count them (each count
        also appended to ``counted``, for other nodes' counters). Returns how
        many changed the state (those it had already are not learnt twice)."""
        return self.advance_many({user: events}, region, count=count, counted=counted)

    def advance_many(
        self,
        batch: dict[str, list[tuple[int, Observed]]],
        region: str = WORLD,
        *,
        count: bool = True,
        counted: list[Counted] | None = None,
    ) -> int:
        """:meth:`advance` for several users at once. A shared state store is
        read and written once for the whole batch (its writes keep the state
        current through the later event, so no lock is needed: two writers
        folding the same events write the same state); states in this
        process are changed in place, one user at a time under their lock."""
        if not self.states.shared:
            n = 0
            for user, events in batch.items():
                with self._user_lock(user):
                    st, folded = self._advanced(
                        user, self.states.get(user), events, region, count, counted
                    )
                    if st is not None:
                        self.states.put(st)
                        n += folded
            return n
        users = [u for u, evs in batch.items() if evs]
        held = self.states.get_many(users)
        behind = {
            u: st.through
            for u in users
            if (st := held.get(u)) is not None and st.through < batch[u][0][0] - 1
        }
        missed = self.history_many(behind) if behind and self.history_many is not None else {}
        out: list[UserState] = []
        n = 0
        for user in users:
            st, folded = self._advanced(
                user, held.get(user), batch[user], region, count, counted, missed.get(user)
            )
            if st is not None:
                out.append(st)
                n += folded
        self.states.put_many(out)
        return n

    def _advanced(
        self,
        user: str,
        st: UserState | None,
        events: list[tuple[int, Observed]],
        region: str,
        count: bool,
        counted: list[Counted] | None,
        missed: History | None = None,
    ) -> tuple[UserState | None, int]:
        """``st`` moved through ``events`` (None: nothing to store) and how
        many of them changed it (``missed``: the user's events after
        ``st.through``, if already read)."""
        if not events:
            return None, 0
        first, last = events[0][0], events[-1][0]
        counting = (first, last) if count else NOTHING  # (others count the rest)
        if st is not None and st.through >= last:
            return None, 0
        if st is None:
            st, folded, exists = self._rebuild(user, region, counting, counted)
            return (st if exists else None), folded  # (deleted since: nothing is kept)
        if st.through < first - 1:
            # another batch of the user's (stored on another node, or here by a
            # request running beside this one) is not folded in yet: read what is
            # missing, this batch's events and any stored since, in their order
            if missed is None:
                assert self.history is not None, "advance needs the engine's history"
                missed = self.history(user, st.through)
            h = missed
            if not h.exists:
                return None, 0
            folded = self._fold(st, [(n, e) for n, e in h.events if n > st.through], counting,
                                counted)  # fmt: skip
            st.through = max(st.through, h.through)
            return st, folded
        later = [(n, e) for n, e in events if n > st.through]
        return st, self._fold(st, later, counting, counted)

    def apply_counts(self, counted: list[Counted]) -> None:
        """Count engagements another node counted (its ``counted``): every
        node's popularity and co-engagement counters follow every node's events."""
        for video, region, ts_ms, previous in counted:
            self.counters.positive(video, region, ts_ms, list(previous))

    def count(self, before: list[tuple[int, Observed]], events: list[tuple[int, Observed]]) -> int:
        """Count a user's events another node stored (popularity, and
        co-engagement with the likes among ``before``, the user's events just
        before them): every node's counters follow every node's events."""
        st = UserState(events[0][1].user if events else "", WORLD)
        self._fold(st, before, NOTHING)
        return self._fold(st, events, EVERYTHING)

    def _fold(
        self,
        st: UserState,
        events: list[tuple[int, Observed]],
        counting: tuple[int, int],
        counted: list[Counted] | None = None,
    ) -> int:
        """Fold events into ``st`` in order; those whose sequence number is in
        the range ``counting`` are also counted (popularity, co-engagement),
        and listed in ``counted``."""
        lo, hi = counting
        n = 0
        for seq, e in events:
            eng = engagement(e.kind, e.watch_ms)
            if eng in ENGAGEMENTS:
                item = self.catalog.get(e.video)
                positive = signal(eng) == "positive"
                previous = list(st.liked)[-5:] if positive else []
                st.observe(e.video, eng, e.ts_ms, item.creator if item else None)
                if positive and lo <= seq <= hi:
                    self.counters.positive(e.video, e.region, e.ts_ms, previous)
                    if counted is not None:
                        counted.append((e.video, e.region, e.ts_ms, previous))
                n += 1
            st.through = seq
        st.changed()
        return n

    def _rebuild(
        self,
        user: str,
        region: str,
        counting: tuple[int, int] = NOTHING,
        counted: list[Counted] | None = None,
    ) -> tuple[UserState, int, bool]:
        """The user's state folded from every event stored (their ``history``),
        how many events changed it, and whether the user is held at all."""
        assert self.history is not None, "advance needs the engine's history"
        h = self.history(user, 0)
        st = UserState(user, region)
        if h.mode is not None:
            st.mode = h.mode
        n = self._fold(st, h.events, counting, counted)
        st.through = max(st.through, h.through)
        return st, n, h.exists

    def rebuilt(self, user: str, region: str = WORLD) -> UserState:
        """The user's state folded again from every stored event (not stored,
        nothing counted): what the stored state must equal."""
        return self._rebuild(user, region)[0]

    def state_of(self, user: str, region: str = WORLD) -> UserState | None:
        """The user's current state: as stored, or (with a history) folded
        from the user's events when the store has none."""
        st = self.states.get(user)
        if st is None and self.history is not None:
            with self._user_lock(user):
                st = self.states.get(user)
                if st is None:
                    st, _, exists = self._rebuild(user, region)
                    if exists:  # (a user deleted a moment ago gets no state back)
                        self.states.put(st)
        return st

    def _user_lock(self, user: str) -> threading.Lock:
        """One of a few locks, by user: one user's state changes one writer at a
        time (in this process) while other users' go on."""
        return self._user_locks[hash(user) % len(self._user_locks)]

    def set_mode(self, user: str, mode: str, region: str = WORLD) -> None:
        if mode not in MODES:
            raise FeedError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.state_of(user, region)  # (folded first, when it is not held)
        with self._user_lock(user):
            self.states.set_mode(user, mode, region)

    def declare_boost(self, boost: Boost) -> None:
        with self._lock:
            self.boosts = (*self.boosts, boost)
            self._pool = None

    def set_boosts(self, boosts: tuple[Boost, ...]) -> None:
        """Apply exactly these (approved) boosts from now on."""
        with self._lock:
            if boosts != self.boosts:
                self.boosts = tuple(boosts)
                self._pool = None

    # -- serving -------------------------------------------------------------------

    def pool(self, now_ms: int | None = None) -> Pool:
        """The current pool, re-snapshotted when the counters or the catalog
        changed and the last snapshot is older than ``pool_interval_ms``. One
        thread builds the new snapshot, outside the engine's lock; feeds meanwhile
        use the previous pool (a feed records the pool it used)."""
        now = int(self.clock() * 1000) if now_ms is None else now_ms
        bucket = now - now % self.bucket_ms
        with self._lock:
            p = self._pool
            boosted = any(b.start_ms <= bucket < b.end_ms for b in self.boosts)
            must = p is None or boosted != bool(p.boosts)
            due = p is not None and (
                bucket - p.bucket_ms >= self.pool_interval_ms
                and (
                    self.counters.version != self._pool_counter_version
                    or p.catalog_seq != self.catalog.seq
                )
            )
            if not (must or due) or (not must and self._pool_building):
                return p  # type: ignore[return-value]
            self._pool_building = True
            version = self.counters.version
        try:
            # housekeeping rides on the snapshot: stale users and counts expire
            # (stale against the data's own time: see pool.horizon)
            at = horizon(bucket, self.counters, self.catalog, self.fresh_window_ms)
            self.states.expire(at)
            self.counters.prune(at)
            r = self.config.retrieval
            fresh = snapshot(
                self.counters,
                self.catalog,
                self.boosts,
                bucket,
                popular_n=max(POOL_POPULAR, r.get("popular", 100), DEPTH),
                rising_n=r.get("rising", 50),
                fresh_n=r.get("fresh", 50),
                fresh_window_ms=self.fresh_window_ms,
                horizon_ms=at,
            )
        finally:
            with self._lock:
                self._pool_building = False
        with self._lock:
            if self._pool is None or fresh.bucket_ms >= self._pool.bucket_ms:
                self._pool = fresh
                self._pool_counter_version = version
            return fresh

    def feed(
        self,
        user: str,
        *,
        region: str = WORLD,
        limit: int = 20,
        mode: str | None = None,
        cursor: str | None = None,
        seed: str | None = None,
        now_ms: int | None = None,
    ) -> ServedFeed:
        """A page of the user's feed. With a cursor, the next page of the feed
        the cursor came from (same inputs, no recomputation)."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise FeedError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        if cursor is not None:
            return self._page(user, cursor, limit)
        if mode is not None and mode not in MODES:
            raise FeedError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if seed is None:
            seed = secrets.token_hex(8)
        elif not _SEED.match(seed):
            raise FeedError("seed must be 1-64 characters of letters, digits, _ and -")
        model = self.model
        if model.stale:
            self.flush()
        pool = self.pool(now_ms)
        st = self.state_of(user, region)
        with self._user_lock(user):
            state, doc, digest = (st or UserState(user, region)).snapshot()
        chosen: Mode = mode or state.mode  # type: ignore[assignment]
        ranked = compute(
            model, self.config, state, pool, self.catalog, seed=seed, mode=chosen, depth=DEPTH
        )
        record = FeedRecord(
            secrets.token_hex(16),
            user,
            chosen,
            seed,
            pool.bucket_ms,
            DEPTH,
            model.version,
            self.config.digest(),
            doc,
            digest,
            pool,
            ranked,
        )
        if self.store_records:
            self.records.put(record)
        with self._lock:
            self.feeds_served += 1
        served = self._serve(record, 0, limit)
        served.fresh = True
        return served

    def _ranked(self, record: FeedRecord) -> Ranked:
        """A record's ranking: as computed, or recomputed from its inputs (a
        record another node wrote), which must give the list it served."""
        if record.ranked is not None:
            return record.ranked
        model = self.model_of(record.model_version)
        if model is None or self.config.digest() != record.config_digest:
            raise CursorExpired(
                "this cursor's feed was ranked by a model or configuration this node no "
                "longer has; ask for a new feed"
            )
        ranked = compute(
            model,
            self.config,
            UserState.from_dict(record.state),
            record.pool,
            self.catalog,
            seed=record.seed,
            mode=record.mode,
            depth=record.depth,
        )
        if ranked.videos != record.videos:
            raise CursorExpired(
                "this cursor's feed cannot be recomputed as served; ask for a new feed"
            )
        record.ranked = ranked
        return ranked

    def _serve(self, record: FeedRecord, offset: int, limit: int) -> ServedFeed:
        ranked = self._ranked(record)
        page = ranked.page(
            offset,
            offset + limit,
            model=self.model_of(record.model_version),
            cfg=self.config,
            liked=[v for v, _ in record.state["liked"]],
        )
        end = offset + len(page)
        nxt = f"{record.feed}.{end}" if end < len(ranked) else None
        hour = record.bucket_ms - record.bucket_ms % EXPOSURE_BUCKET_MS
        with self._lock:  # exposure, aggregated: no user, only videos and counts
            key = (record.model_version, record.config_digest, hour)
            counts, boosted = self.exposure.setdefault(key, (Counter(), Counter()))
            counts.update(i.video for i in page)
            # labelled as boosted (declared boosts, released creator boosts)
            boosted.update(i.video for i in page if i.boost)
            self.pages_counted += 1
            while len(self.exposure) > EXPOSURE_BUCKETS:
                self.exposure.popitem(last=False)
        return ServedFeed(record, offset, page, nxt)

    def exposure_rows(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """Impressions per (model version, ranking configuration, hour, video)
        since ``since_ms``, with each video's creator, region and topics:
        aggregates, no user."""
        return self.describe_videos(self.exposure_counts(since_ms))

    def exposure_counts(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """This engine's impressions per (model version, ranking configuration, hour, video)."""
        with self._lock:
            snapshot = [
                (k, dict(c), dict(b)) for k, (c, b) in self.exposure.items() if k[2] >= since_ms
            ]
        return [
            {
                "model_version": model,
                "ranking_config": config,
                "hour_ms": hour,
                "video": video,
                "impressions": n,
                "boosted_impressions": boosted.get(video, 0),
            }
            for (model, config, hour), counts, boosted in snapshot
            for video, n in counts.items()
        ]

    def describe_videos(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Exposure rows with each video's creator, region and topics."""
        out = []
        for r in rows:
            item = self.catalog.get(r["video"])
            out.append(
                {
                    **r,
                    "creator": item.creator if item else "",
                    "region": item.region if item else "",
                    "topics": list(item.topics) if item else [],
                }
            )
        return out

    def _page(self, user: str, cursor: str, limit: int) -> ServedFeed:
        m = _CURSOR.match(cursor) if isinstance(cursor, str) else None
        if m is None:
            raise FeedError("malformed cursor", hint="pass next_cursor of a previous page as is")
        record = self.records.get(m.group(1))
        if record is None or record.user != user:
            raise CursorExpired("this cursor's feed is no longer available; ask for a new feed")
        offset = int(m.group(2))
        if offset > len(record.videos):
            raise FeedError("cursor offset beyond the end of its feed")
        return self._serve(record, offset, limit)

    def record(self, feed: str) -> FeedRecord | None:
        return self.records.get(feed)

    # -- replay ----------------------------------------------------------------------

    def replay(
        self, record: FeedRecord, model: Model | None = None, config: RankingConfig | None = None
    ) -> list[str]:
        """Recompute a feed from its recorded inputs with the model of its
        version (or ``model``); the videos, in order. With ``config`` (the
        approved ranking configuration) the feed is recomputed as that
        configuration ranks it, whatever configuration served it: what the
        approved algorithm would have shown."""
        model = model or self.model_of(record.model_version)
        if model is None or model.version != record.model_version:
            raise ReplayError(f"model {record.model_version} is not available for replay")
        if config is None and self.config.digest() != record.config_digest:
            raise ReplayError("the ranking configuration changed since this feed was served")
        config = config or self.config
        state = UserState.from_dict(record.state)
        if state.digest() != record.state_digest:
            raise ReplayError("the recorded state does not match its digest")
        return compute(
            model,
            config,
            state,
            record.pool,
            self.catalog,
            seed=record.seed,
            mode=record.mode,
            depth=record.depth,
        ).videos

    # -- deletion --------------------------------------------------------------------

    def forget(self, user: str, *, refresh: bool = True) -> dict[str, Any]:
        """Remove a user: their state, their positive counts, their feed records,
        and their rows from the model (exactly). With ``refresh=False`` the model
        is only downdated; its derived parts are recomputed by :meth:`flush`,
        which the next feed calls first (batch deletions)."""
        with self._user_lock(user), self._lock:
            st = self.states.get(user)
            dropped = self.states.drop(user)
            if st is not None:
                for video, ts in st.liked.items():
                    self.counters.forget_positive(video, st.region, ts)
            gone = self.records.drop_user(user)
            if self._training:
                self._forgotten_during_training.add(user)
            model = self._model
            t = time.perf_counter()
            forgot = model.forget(user, refresh=False) if model is not None else False
        if forgot and refresh:
            self.flush()
        return {
            "state_dropped": dropped,
            "model_updated": forgot,
            "model_version": model.version if model is not None and not model.stale else None,
            "feed_records_dropped": gone,
            "seconds": round(time.perf_counter() - t, 3),
        }

    def flush(self) -> str | None:
        """Finish pending model updates (after deletions); the live version."""
        with self._lock:
            model = self._model
            if model is None:
                return None
            if model.stale:
                before = model.version
                model.refresh()
                self._models.pop(before, None)
                self._models[model.version] = model
            return model.version

    def stats(self) -> dict[str, Any]:
        return {
            "model": self.live_version,
            "users_with_state": len(self.states),
            "videos": len(self.catalog),
            "feeds_served": self.feeds_served,
            "states_evicted": self.states.evicted,
            "states_expired": self.states.expired,
        }
