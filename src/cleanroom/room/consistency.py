"""Whether the users' online states agree with the system of record.

A state in the store (Redis for a cluster's nodes) must be the fold of the
user's events stored in the vault, through the same sequence number, with
the feed setting they chose; a user the vault no longer holds has no state.
A state that is missing is not wrong (the next feed folds it again); one that
differs is — after a node died mid-batch, a bus outage or a flushed store,
this is what ``cleanroom cluster check`` asks, and what the fault tests ask."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cleanroom.cluster.settings import FeedSettings
from cleanroom.foryou import Engine, Item
from cleanroom.foryou.online import StateStore

if TYPE_CHECKING:
    from cleanroom.room import CleanRoom


@dataclass
class StateCheck:
    """What a check found: how many users' states were compared, and who differs."""

    users: int = 0  # users with stored events, checked
    held: int = 0  # of them, with a state in the store
    equal: int = 0
    missing: int = 0  # not in the store (folded again on the next feed)
    differ: list[str] = field(default_factory=list)  # a state that is not the fold
    orphans: list[str] = field(default_factory=list)  # a state of a user the vault lacks
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differ and not self.orphans

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "users": self.users,
            "held": self.held,
            "equal": self.equal,
            "missing": self.missing,
            "differ": self.differ,
            "orphans": self.orphans,
            "seconds": round(self.seconds, 3),
        }


def check_states(
    room: CleanRoom,
    store: StateStore,
    *,
    sample: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StateCheck:
    """Compare every user's stored state (or ``sample`` users at random) with
    the fold of their stored events, read through the gate as the
    recommender (one recorded jurisdiction-wide read)."""
    from cleanroom.room.recommender import user_histories

    t = time.perf_counter()
    me, gate, vault = room.system("recommender"), room.gate, room.vault
    region = room.config.site.jurisdiction
    grant = gate.require(me, "read", "Events", purpose="recommendation", all_subjects=True)
    settings = FeedSettings(room.db)
    engine = Engine(states=store)  # the engine's own fold, on the vault's catalogue
    engine.add_videos(
        Item.of(v)
        for v in vault.videos(gate.require(me, "read", "Videos", purpose="recommendation"))
    )
    engine.history = lambda user, after: user_histories(room, grant, settings, {user: after})[user]
    users = vault.users_with_events(grant)
    others = sorted(set(store.user_ids()) - set(users))  # states without events
    held = vault.subjects(others)
    out = StateCheck(orphans=[u for u in others if not held[u].exists])
    if sample is not None and sample < len(users):
        users = random.sample(users, sample)
    for n, user in enumerate(users):
        stored = store.get(user)
        if stored is None:
            out.missing += 1
        else:
            out.held += 1
            if stored.to_dict() == engine.rebuilt(user, region).to_dict():
                out.equal += 1
            else:
                out.differ.append(user)
        if progress is not None:
            progress(n + 1, len(users))
    out.users = len(users)
    out.seconds = time.perf_counter() - t
    return out
