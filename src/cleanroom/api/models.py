"""What each route answers on success, for the OpenAPI document.

The routes build their answers as plain JSON; these models say which fields a
client can count on (more may come: every model allows extra fields, so a
newer server stays readable by an older client). Errors are the
:class:`~cleanroom.api.problems.Problem` of every route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Decided(Open):
    decision: int | None = Field(None, description="the ledger index of the gate's decision")


class Page(Open):
    items: list[Any]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class Health(Open):
    status: str = Field(description="ok, or degraded (with last_error)")
    version: str
    log: dict[str, Any] | None = None
    recommender: dict[str, Any] | None = None
    witness: bool = False
    last_error: str | None = None


class Appended(Open):
    index: int
    leaf_hash: str
    checkpoint_size: int | None = None


class LedgerEntry(Open):
    index: int
    leaf_hash: str
    entry: dict[str, Any]


class Consistency(Open):
    old: int
    new: int
    proof: list[str]


class EventsStored(Decided):
    stored: int
    already_stored: int | None = Field(None, description="a batch sent again: stored before")


class VideosStored(Decided):
    written: int


class UserStored(Decided):
    id: str
    created: bool


class UserRecord(Decided):
    id: str


class UserEvents(Page, Decided):
    user: str
    obligations: list[str] = []


class UserExport(Decided):
    format: str
    user: dict[str, Any]
    events: list[dict[str, Any]]


class DeletionReceipt(Open):
    receipt: int = Field(description="the deletion receipt's ledger index")
    deleted: list[dict[str, Any]] = []


class DeletionOrder(Open):
    id: str
    scope: str
    status: str


class DeletionOrders(Page, Decided):
    pass


class Aggregates(Decided):
    by: str
    min_group: int
    counts: dict[str, int]
    privacy: dict[str, Any] | None = Field(
        None, description="the differentially private release (all but the oversight body)"
    )


class Feed(Open):
    feed: str
    items: list[dict[str, Any]]
    next_cursor: str | None = None
    ledger_index: int


class FeedSettings(Open):
    user: str
    mode: str


class FeedConfig(Open):
    digest: str


class ModelCard(Open):
    ready: bool


class Retraining(Open):
    status: str
    live: str | None = None


class Topics(Open):
    model_version: str
    source: str
    topics: dict[str, Any]


class Replays(Open):
    feeds: list[dict[str, Any]]
    approved_config: str


class Replay(Open):
    feed: str


class Artifact(Open):
    digest: str
    kind: str
    name: str
    verdict: dict[str, Any] | None = None


class Verdict(Open):
    approved: bool
    counted: list[str]
    missing: str


class Deployed(Open):
    kind: str | None = None
    artifact: str | None = None


class Screening(Open):
    decision: str | None = None


class Exported(Open):
    allowed: bool
    ledger_index: int
    data: Any = None


class Flows(Open):
    flows: int


class Boost(Open):
    id: str
    video: str
    status: str
    declared_digest: str | None = None
