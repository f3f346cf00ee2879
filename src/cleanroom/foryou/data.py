"""A training snapshot: who engaged how with which video, as sparse matrices
over fixed user and item indexes, plus the catalog the items come from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from cleanroom.foryou.signals import engagement, head_of, signal

ENGAGEMENTS = (
    "long_view",
    "like",
    "share",
    "comment",
    "follow",
    "short_view",
    "skip",
    "not_interested",
    "impression",
)
CODE = {e: n for n, e in enumerate(ENGAGEMENTS)}
POSITIVE_CODES = np.array([signal(e) == "positive" for e in ENGAGEMENTS])
NEGATIVE_CODES = np.array([signal(e) == "negative" for e in ENGAGEMENTS])


def json_digest(doc: object) -> str:
    """``sha256:`` of a JSON document in its canonical form (sorted keys, no
    spaces): the versions of pools, user states and ranking configurations."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=list)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Item:
    """What the engine knows of a video (interoperable data only)."""

    id: str
    creator: str
    topics: tuple[str, ...] = ()
    region: str | None = None
    created_ms: int = 0

    @classmethod
    def of(cls, video: Any) -> Item:
        """From any record with the video fields (the vault's ``Video``)."""
        return cls(video.id, video.creator, tuple(video.topics), video.region, video.created_ms)


@dataclass
class TrainingSet:
    """Engagements as coordinate arrays over ``users`` x ``items``."""

    users: list[str]
    items: list[str]
    u: np.ndarray  # int32 user index
    i: np.ndarray  # int32 item index
    code: np.ndarray  # int8 engagement code (ENGAGEMENTS)
    ts: np.ndarray  # int64 ms
    catalog: dict[str, Item] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)  # user -> region
    derived: tuple[str, ...] = ()  # what was synthesized or derived, said plainly

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[str, str, str, int, int]],
        catalog: Iterable[Item],
        *,
        regions: dict[str, str] | None = None,
        derived: tuple[str, ...] = (),
    ) -> TrainingSet:
        """From ``(user, video, kind, ts_ms, watch_ms)`` rows (what the vault's
        bulk read yields) and the catalog. Events on videos missing from the
        catalog get an item of unknown creator (derived, and said so)."""
        cat = {it.id: it for it in catalog}
        uidx: dict[str, int] = {}
        iidx = {v: n for n, v in enumerate(sorted(cat))}
        items = sorted(cat)
        us: list[int] = []
        its: list[int] = []
        codes: list[int] = []
        tss: list[int] = []
        unknown = 0
        for user, video, kind, ts, watch in rows:
            e = engagement(kind, watch)
            if e not in CODE:
                continue
            n = uidx.setdefault(user, len(uidx))
            m = iidx.get(video)
            if m is None:
                m = iidx[video] = len(items)
                items.append(video)
                cat[video] = Item(video, f"unknown:{video}")
                unknown += 1
            us.append(n)
            its.append(m)
            codes.append(CODE[e])
            tss.append(ts)
        if unknown:
            derived = (*derived, f"{unknown} videos had no catalog entry: creator unknown")
        return cls(
            list(uidx),
            items,
            np.asarray(us, np.int32),
            np.asarray(its, np.int32),
            np.asarray(codes, np.int8),
            np.asarray(tss, np.int64),
            cat,
            dict(regions or {}),
            derived,
        )

    def records_by_region(self) -> dict[str, int]:
        """How many engagement rows each region's users contributed (the
        training data's lineage by jurisdiction)."""
        if not len(self.u):
            return {}
        regions = np.array([self.regions.get(u, "unknown") for u in self.users])
        names, counts = np.unique(regions[self.u], return_counts=True)
        return dict(zip(names.tolist(), counts.tolist(), strict=True))

    @property
    def timed(self) -> bool:
        """Whether the events carry time (more than one distinct timestamp)."""
        return len(self.ts) > 1 and bool((self.ts != self.ts[0]).any())

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.users), len(self.items)

    def matrix(self, codes: np.ndarray) -> sp.csr_matrix:
        """Binary user x item matrix of the engagements whose code is marked."""
        m = codes[self.code]
        x = sp.csr_matrix(
            (np.ones(int(m.sum()), np.float64), (self.u[m], self.i[m])), shape=self.shape
        )
        x.sum_duplicates()
        x.data[:] = 1.0
        return x

    def positives(self) -> sp.csr_matrix:
        return self.matrix(POSITIVE_CODES)

    def negatives(self) -> sp.csr_matrix:
        return self.matrix(NEGATIVE_CODES)

    def head_labels(self) -> dict[str, np.ndarray]:
        """Per engagement row, whether it is a positive example of each head."""
        heads = np.array([head_of(e) or "" for e in ENGAGEMENTS])
        named = heads[self.code]
        return {h: named == h for h in ("long_view", "like", "share", "skip")}

    def rows(self, keep: np.ndarray) -> TrainingSet:
        """The same snapshot with only the engagement rows marked in ``keep``
        (users, items and their indexes unchanged)."""
        return dataclasses.replace(
            self, u=self.u[keep], i=self.i[keep], code=self.code[keep], ts=self.ts[keep]
        )

    def without(self, users: set[str]) -> TrainingSet:
        """The same snapshot without some users' rows (indexes of the others kept)."""
        gone = np.array([n for n, u in enumerate(self.users) if u in users], np.int32)
        regions = {u: r for u, r in self.regions.items() if u not in users}
        return dataclasses.replace(self.rows(~np.isin(self.u, gone)), regions=regions)

    def digest(self) -> str:
        """Commitment to the snapshot's content (for lineage; no personal data)."""
        h = hashlib.sha256()
        for a in (self.u, self.i, self.code, self.ts):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\n".join(self.users).encode())
        h.update("\n".join(self.items).encode())
        return "sha256:" + h.hexdigest()
