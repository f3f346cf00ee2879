"""Users' online states as folds of their stored events, in the process and in
Redis (the same tests on both): learnt in order, folded again when missing or
behind, never learnt twice, the feed setting kept apart from the fold, and —
in Redis — one state seen by two engines (two nodes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cleanroom.cluster.state import RedisStates, state_store
from cleanroom.errors import ConfigError
from cleanroom.foryou import Engine, Item, Observed
from cleanroom.foryou.online import History, States, StateStore, UserState

STORES = ["memory", "redis"]


class Stored:
    """What a vault holds of users' events: each user's in order, and settings."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[int, Observed]]] = {}
        self.modes: dict[str, str] = {}
        self.reads = 0

    def add(self, user: str, *videos_kinds: tuple[str, str]) -> list[tuple[int, Observed]]:
        mine = self.events.setdefault(user, [])
        new = []
        for video, kind in videos_kinds:
            new.append((len(mine) + 1, Observed(user, video, kind, 1_000 * (len(mine) + 1))))
            mine.append(new[-1])
        return new

    def history(self, user: str, after: int) -> History:
        self.reads += 1
        mine = self.events.get(user, [])
        return History(len(mine), [e for e in mine if e[0] > after], self.modes.get(user))


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Iterator:
    made: list[RedisStates] = []

    def make() -> StateStore:
        if request.param == "memory":
            return States()
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("unique_prefix")
        made.append(RedisStates(url, prefix=prefix))
        return made[-1]

    yield make
    if made:
        made[0].clear()
    for s in made:
        s.close()


def engine_on(store: StateStore, stored: Stored) -> Engine:
    e = Engine(states=store)
    e.add_videos(Item(f"v{i}", f"c{i % 3}") for i in range(10))
    e.history = stored.history
    return e


def folded(stored: Stored, user: str) -> dict:
    """The state a fresh engine folds from everything stored."""
    fresh = engine_on(States(), stored)
    st = fresh.state_of(user)
    assert st is not None
    return st.to_dict()


def test_events_learnt_in_order_equal_the_fold(make_store) -> None:
    stored = Stored()
    e = engine_on(make_store(), stored)
    assert e.advance("a", stored.add("a", ("v1", "like"), ("v2", "skip"))) == 2
    assert e.advance("a", stored.add("a", ("v3", "share"), ("v1", "not_interested"))) == 2
    assert stored.reads == 1  # only the first batch found no state: folded once
    st = e.states.get("a")
    assert st is not None and st.through == 4
    assert st.to_dict() == folded(stored, "a")
    assert list(st.liked) == ["v1", "v3"] and list(st.not_interested) == ["v1"]


def test_a_state_behind_is_folded_again_and_nothing_is_learnt_twice(make_store) -> None:
    stored = Stored()
    e = engine_on(make_store(), stored)
    e.advance("a", stored.add("a", ("v1", "like")))
    stored.add("a", ("v2", "like"), ("v3", "skip"))  # stored by another node, not shown here
    later = stored.add("a", ("v4", "like"))
    e.advance("a", later)
    st = e.states.get("a")
    assert st is not None and st.through == 4 and st.to_dict() == folded(stored, "a")
    popularity = e.counters.slow["*"].value("v4", 4_000)
    assert e.advance("a", later) == 0  # the same events again (a redelivery)
    assert e.counters.slow["*"].value("v4", 4_000) == popularity


def test_a_lost_state_is_rebuilt_from_the_history(make_store) -> None:
    stored = Stored()
    store = make_store()
    e = engine_on(store, stored)
    e.advance("a", stored.add("a", ("v1", "like"), ("v2", "like"), ("v5", "skip")))
    before = e.states.get("a")
    assert before is not None
    assert store.drop("a") and store.get("a") is None
    again = e.state_of("a")
    assert again is not None and again.to_dict() == before.to_dict()
    assert store.get("a") is not None  # and kept again


def test_the_feed_setting_survives_folds_and_loss(make_store) -> None:
    stored = Stored()
    store = make_store()
    e = engine_on(store, stored)
    e.advance("a", stored.add("a", ("v1", "like")))
    e.set_mode("a", "popular")
    stored.modes["a"] = "popular"  # (the clean room keeps it in the database)
    e.advance("a", stored.add("a", ("v2", "like")))
    assert e.states.get("a").mode == "popular"
    store.drop("a")
    assert e.state_of("a").mode == "popular"
    e.set_mode("b", "popular")  # a user with no state yet: folded first, then set
    assert e.states.get("b").mode == "popular"


def test_a_stale_write_never_replaces_a_later_state(make_store) -> None:
    store = make_store()
    late = UserState("a", "*", through=5)
    late.liked = {"v1": 1}
    assert store.put(late)
    early = UserState("a", "*", through=3)
    assert not store.put(early)
    assert store.get("a").through == 5 and list(store.get("a").liked) == ["v1"]


def test_two_nodes_share_one_redis_state(redis_url: str, unique_prefix: str) -> None:
    stored = Stored()
    a_store = RedisStates(redis_url, prefix=unique_prefix)
    b_store = RedisStates(redis_url, prefix=unique_prefix)
    try:
        a, b = engine_on(a_store, stored), engine_on(b_store, stored)
        a.advance("u", stored.add("u", ("v1", "like"), ("v2", "like")))
        seen_by_b = b.state_of("u")
        assert seen_by_b is not None and seen_by_b.through == 2
        b.advance("u", stored.add("u", ("v3", "skip")))
        assert a.state_of("u").to_dict() == folded(stored, "u")
        reads = stored.reads
        assert b.state_of("u").to_dict() == a.state_of("u").to_dict()
        assert stored.reads == reads  # both read Redis, neither folded again
        assert sorted(a_store.user_ids()) == ["u"] and len(b_store) == 1
    finally:
        a_store.clear()
        a_store.close()
        b_store.close()


def test_a_state_store_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        state_store("http://127.0.0.1:6379/0")
    assert isinstance(state_store(None), States)


def test_a_node_reads_back_what_it_wrote_without_the_document(
    redis_url: str, unique_prefix: str
) -> None:
    """The near cache: a state this node wrote comes back from Redis as its
    sequence number only (no document decoded), as a copy the caller may
    change; a state another node moved, deleted, or whose setting it changed
    is read as Redis holds it."""
    a = RedisStates(redis_url, prefix=unique_prefix)
    b = RedisStates(redis_url, prefix=unique_prefix)
    try:
        st = UserState("u", "*", through=3)
        st.liked = {"v1": 1, "v2": 2}
        assert a.put(st)
        got = a.get("u")
        assert a.near_hits == 1 and got is not None and got.to_dict() == st.to_dict()
        got.liked["v9"] = 9  # a copy: what is kept here does not change
        assert "v9" not in a.get("u").liked and a.near_hits == 2
        later = b.get("u")  # (b decodes it: it holds none)
        assert b.near_hits == 0 and later is not None and later.to_dict() == st.to_dict()
        later.liked["v3"] = 3
        later.through = 4
        assert b.put(later)
        assert list(a.get("u").liked) == ["v1", "v2", "v3"] and a.near_hits == 2
        b.set_mode("u", "popular", "*")
        assert a.get("u").mode == "popular" and a.near_hits == 3
        assert b.drop("u") and a.get("u") is None  # deleted on another node
        assert a.put(UserState("w", "*", through=1))
        a.client.hset(f"{unique_prefix}st:w", mapping={"doc": b'{"old": 1}', "through": 2})
        assert a.get("w") is None  # a layout not this version's: folded again
        a.client.script_flush()  # (what a restart of Redis does to its scripts)
        assert a.put(UserState("x", "*", through=1)) and a.get("x") is not None
    finally:
        a.clear()
        a.close()
        b.close()
