"""The bundled interaction datasets (kuairec-small, kuairand-small) as clean-room
records: users, videos and events.

The files hold only ``user item label`` triples (1.00 positive: a long view;
0.00 negative: the user moved on). Everything else is synthesized,
deterministically, and marked so: user profiles carry ``synthetic: true``;
creators, timestamps and watch times are derived from the ids and the line
order (documented in ``describe``). The jurisdiction is the site's.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress

from cleanroom.storage.errors import CleanroomError
from cleanroom.vault.model import Event, User, Video

DATASETS = ("kuairec-small", "kuairand-small")
SPLITS = ("train", "valid", "test")
EPOCH_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z: synthesized timestamps start here
STEP_MS = 30_000
CREATORS = 400


class DatasetError(CleanroomError):
    """A bundled dataset that does not exist."""

    status = 404
    title = "Unknown dataset"


@dataclass(frozen=True)
class Interaction:
    """One line of a bundled dataset: split, user, item, whether it was a positive."""

    split: str
    line: int
    user: str
    item: str
    positive: bool


def interactions(name: str) -> Iterator[Interaction]:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; bundled: {', '.join(DATASETS)}")
    root = resources.files("cleanroom") / "data" / name
    for split in SPLITS:
        with (root / f"{split}.txt").open() as f:
            for n, line in enumerate(f):
                u, i, label = line.split()
                yield Interaction(split, n, u, i, float(label) > 0.5)


def describe() -> str:
    return (
        "users, items and labels are real (Kuaishou logs, CC BY-SA 4.0); profiles, "
        "creators, timestamps and watch times are synthesized"
    )


def video_of(item: str) -> Video:
    creator = f"creator-{int(item) * 7919 % CREATORS}" if item.isdigit() else f"creator-{item}"
    return Video(id=f"v{item}", creator=creator, public=True, created_ms=EPOCH_MS - 86_400_000)


def user_of(uid: str, jurisdiction: str) -> User:
    rng = random.Random(f"profile:{uid}")
    lat, lon = rng.uniform(25.0, 48.0), rng.uniform(-123.0, -71.0)
    return User(
        id=f"u{uid}",
        jurisdiction=jurisdiction,
        profile={
            "handle": f"@viewer{uid}",
            "email": f"viewer{uid}@example.com",
            "phone": f"+1 555 01{rng.randrange(10, 99)} {rng.randrange(1000, 9999)}",
            "birth_year": rng.randrange(1960, 2010),
            "device_id": f"dev-{rng.getrandbits(64):016x}",
            "ip_address": f"198.51.100.{rng.randrange(1, 254)}",
            "precise_location": {"lat": round(lat, 5), "lon": round(lon, 5)},
        },
        public={"display_name": f"Viewer {uid}"},
        synthetic=True,
    )


def load(name: str, jurisdiction: str = "US") -> tuple[list[User], list[Video], list[Event]]:
    """Users, videos and events of a bundled dataset (events in time order per user)."""
    users: dict[str, User] = {}
    videos: dict[str, Video] = {}
    events: list[Event] = []
    clock: dict[str, int] = {}
    for it in interactions(name):
        if it.user not in users:
            users[it.user] = user_of(it.user, jurisdiction)
        if it.item not in videos:
            videos[it.item] = video_of(it.item)
        t = clock.get(it.user, 0)
        clock[it.user] = t + 1
        rng = random.Random(f"{it.split}:{it.line}")
        events.append(
            Event(
                id=f"{name}-{it.split}-{it.line}",
                user=f"u{it.user}",
                video=f"v{it.item}",
                kind="view" if it.positive else "skip",
                ts_ms=EPOCH_MS + t * STEP_MS,
                watch_ms=rng.randrange(15_000, 60_000) if it.positive else rng.randrange(300, 3000),
                context={"dataset": name, "synthetic_time": True},
            )
        )
    return list(users.values()), list(videos.values()), events


EVENT_BATCH = 5000
USER_COLUMNS = ("handle", "email", "phone", "birth_year", "device_id", "ip_address",
                "precise_location")  # fmt: skip


def export(name: str, out: Path, jurisdiction: str = "US") -> dict[str, Path]:
    """A bundled dataset as a platform's warehouse hands it over: users.csv
    (profile fields as ``profile.X`` columns), videos.csv and events.parquet —
    the files ``cleanroom load`` takes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    users, videos, events = load(name, jurisdiction)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "users.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "jurisdiction", *(f"profile.{c}" for c in USER_COLUMNS),
                    "public.display_name", "synthetic"])  # fmt: skip
        for u in users:
            values = [u.profile.get(c, "") for c in USER_COLUMNS]
            values = [json.dumps(v) if isinstance(v, dict) else v for v in values]
            w.writerow([u.id, u.jurisdiction, *values, u.public.get("display_name", ""), "true"])
    with (out / "videos.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "creator", "public", "created_ms"])
        for v in videos:
            w.writerow([v.id, v.creator, "true", v.created_ms])
    rows = [{**e.to_dict(), "context": json.dumps(e.context)} for e in events]
    pq.write_table(pa.Table.from_pylist(rows), out / "events.parquet")
    return {"users": out / "users.csv", "videos": out / "videos.csv",
            "events": out / "events.parquet"}  # fmt: skip


async def load_through_api(
    url: str, token: str, users, videos, events, console: Console | None = None
) -> None:
    """Load users, videos and events the way the platform does: over the API,
    many requests at once, with a progress bar."""
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
        with Progress(console=console, transient=True) as bar:
            t_users = bar.add_task(f"PUT /v1/users ({len(users)})", total=len(users))

            async def put(u) -> None:
                async with sem:
                    body = {
                        "jurisdiction": u.jurisdiction,
                        "profile": u.profile,
                        "public": u.public,
                        "synthetic": True,
                    }
                    r = await c.put(f"/v1/users/{u.id}", json=body)
                    r.raise_for_status()
                    bar.advance(t_users)

            await asyncio.gather(*(put(u) for u in users))
            for i in range(0, len(videos), 1000):
                part = [
                    {"id": v.id, "creator": v.creator, "created_ms": v.created_ms}
                    for v in videos[i : i + 1000]
                ]
                (await c.post("/v1/videos", json={"videos": part})).raise_for_status()
            t_events = bar.add_task(f"POST /v1/events ({len(events):,})", total=len(events))
            sem2 = asyncio.Semaphore(2)

            async def send(part) -> None:
                async with sem2:
                    r = await c.post("/v1/events", json={"events": [e.to_dict() for e in part]})
                    r.raise_for_status()
                    bar.advance(t_events, len(part))

            await asyncio.gather(
                *(send(events[i : i + EVENT_BATCH]) for i in range(0, len(events), EVENT_BATCH))
            )
