"""The event bus, in one process and on NATS JetStream (the same tests on
both): every node gets every message in one order, a message sent twice
(same id) arrives once, a handler that fails gets the message again, and — on
JetStream — a node that was stopped catches up from where it left off."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import nats
import pytest

from cleanroom.cluster.bus import Bus, MemoryBus, NatsBus

BUSES = ["memory", "nats"]


class Inbox:
    """What one node's handler received."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[dict] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, msg: dict) -> None:
        with self.lock:
            if self.fail_first:
                self.fail_first -= 1
                raise RuntimeError("a handler that fails once")
            self.got.append(msg)

    def ids(self) -> list[str]:
        with self.lock:
            return [m["id"] for m in self.got]


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


@pytest.fixture(params=BUSES)
def make_bus(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator:
    made: list[Bus] = []
    name = unique_prefix.rstrip(":")
    url = request.getfixturevalue("nats_url") if request.param == "nats" else ""

    def make(node: str) -> Bus:
        if request.param == "memory":
            bus: Bus = MemoryBus(name, node)
        else:
            bus = NatsBus(url, node, name=name)
        made.append(bus)
        return bus

    yield make
    for b in made:
        b.close()
    if url:
        _drop_stream(url, f"CLEANROOM_{name}")


def _drop_stream(url: str, stream: str) -> None:
    async def drop() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(drop())


def test_every_node_gets_every_message_in_one_order(make_bus) -> None:
    a, b = make_bus("a"), make_bus("b")
    got_a, got_b = Inbox(), Inbox()
    a.follow(got_a)
    b.follow(got_b)
    for n in range(20):
        (a if n % 2 else b).publish("events", {"n": n}, f"m{n}")
    wait_for(lambda: len(got_a.ids()) == 20 and len(got_b.ids()) == 20)
    assert got_a.ids() == got_b.ids()
    assert sorted(m["n"] for m in got_a.got) == list(range(20))
    assert {m["node"] for m in got_a.got} == {"a", "b"}


def test_a_message_sent_twice_arrives_once(make_bus) -> None:
    a = make_bus("a")
    got = Inbox()
    a.follow(got)
    a.publish("videos", {"ids": ["v1"]}, "same")
    a.publish("videos", {"ids": ["v1"]}, "same")  # the relay sending it again
    a.publish("videos", {"ids": ["v2"]}, "other")
    wait_for(lambda: "other" in got.ids())
    time.sleep(0.2)
    assert got.ids() == ["same", "other"]


def test_a_failed_handler_gets_the_message_again(nats_url: str, unique_prefix: str) -> None:
    name = unique_prefix.rstrip(":")
    a = NatsBus(nats_url, "a", name=name)
    try:
        got = Inbox(fail_first=1)
        a.follow(got)
        a.publish("events", {"n": 1}, "once")
        wait_for(lambda: got.ids() == ["once"], timeout=15)
    finally:
        a.close()
        _drop_stream(nats_url, f"CLEANROOM_{name}")


def test_a_stopped_node_catches_up_from_the_stream(nats_url: str, unique_prefix: str) -> None:
    name = unique_prefix.rstrip(":")
    try:
        a = NatsBus(nats_url, "a", name=name)
        b = NatsBus(nats_url, "b", name=name)
        got = Inbox()
        b.follow(got)
        a.publish("events", {"n": 0}, "m0")
        wait_for(lambda: got.ids() == ["m0"])
        b.close()  # stopped
        for n in range(1, 6):
            a.publish("events", {"n": n}, f"m{n}")
        again = NatsBus(nats_url, "b", name=name)  # restarted, same node
        again.follow(got)
        wait_for(lambda: got.ids() == [f"m{n}" for n in range(6)])
        wait_for(lambda: again.lag() == 0)
        again.close()
        a.close()
    finally:
        _drop_stream(nats_url, f"CLEANROOM_{name}")
