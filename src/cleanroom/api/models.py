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
    """A response object; fields beyond the declared ones may be present."""

    model_config = ConfigDict(extra="allow")


class Decided(Open):
    """A response that names the ledger index of the gate's decision behind it."""

    decision: int | None = Field(None, description="the ledger index of the gate's decision")


class Page(Open):
    """One page of a list: its items and the cursor of the next page."""

    items: list[Any]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: done")


class Health(Open):
    """What /healthz reports: the log's signed range and the recommender's state."""

    status: str = Field(description="ok, or degraded (with last_error)")
    version: str
    node: str | None = Field(None, description="this node's name (cleanroom serve --node)")
    model: str | None = Field(None, description="the live model's digest")
    bus: dict[str, Any] | None = Field(None, description="the event bus and this node's lag")
    log: dict[str, Any] | None = None
    recommender: dict[str, Any] | None = None
    witness: bool = False
    last_error: str | None = None


class Appended(Open):
    """An entry appended to the ledger: its index and leaf hash."""

    index: int
    leaf_hash: str
    checkpoint_size: int | None = None


class LedgerEntry(Open):
    """One ledger entry with its index and leaf hash."""

    index: int
    leaf_hash: str
    entry: dict[str, Any]


class LedgerSearch(Page):
    """Entries that match a search, newest first, and the checkpoint that covers them."""

    checkpoint: dict[str, Any] = Field(description="size, root and signed note searched")


class Consistency(Open):
    """An RFC 9162 consistency proof between two tree sizes."""

    old: int
    new: int
    proof: list[str]


class EventsStored(Decided):
    """A batch of events stored (or recognised as sent before)."""

    stored: int
    already_stored: int | None = Field(None, description="a batch sent again: stored before")


class VideosStored(Decided):
    """A batch of videos written to the catalogue."""

    written: int


class UsersStored(Decided):
    """A batch of users added (those stored before are left as they are)."""

    created: int
    already_stored: int


class UserStored(Decided):
    """A user's record created or replaced."""

    id: str
    created: bool


class UserRecord(Decided):
    """A user's record as the caller may see it (masked fields masked)."""

    id: str


class UserEvents(Page, Decided):
    """A page of a user's events."""

    user: str
    obligations: list[str] = []


class UserExport(Decided):
    """Everything the clean room holds about a user (their own export)."""

    format: str
    user: dict[str, Any]
    events: list[dict[str, Any]]


class DeletionReceipt(Open):
    """A deletion done: the receipt's ledger index and what went."""

    receipt: int = Field(description="the deletion receipt's ledger index")
    deleted: list[dict[str, Any]] = []


class DeletionOrder(Open):
    """A deletion order and its progress."""

    id: str
    scope: str
    status: str


class DeletionOrders(Page, Decided):
    """A page of deletion orders."""


class Aggregates(Decided):
    """Counts released under a minimum group size and differential privacy."""

    by: str
    min_group: int
    counts: dict[str, int]
    privacy: dict[str, Any] | None = Field(
        None, description="the differentially private release (all but the oversight body)"
    )


class Feed(Open):
    """A page of a user's For You feed, explained and committed to the ledger."""

    feed: str
    items: list[dict[str, Any]]
    next_cursor: str | None = None
    ledger_index: int


class FeedSettings(Open):
    """A user's feed setting (personalised or popular)."""

    user: str
    mode: str


class FeedConfig(Open):
    """The live ranking configuration and its digest."""

    digest: str


class ModelCard(Open):
    """The live model: version, training lineage, readiness."""

    ready: bool


class Retraining(Open):
    """A retraining started (or already running)."""

    status: str
    live: str | None = None


class Topics(Open):
    """The topic of every video, derived after each training."""

    model_version: str
    source: str
    topics: dict[str, Any]


class Replays(Open):
    """Served feeds recomputed with the approved configuration."""

    feeds: list[dict[str, Any]]
    approved_config: str


class Replay(Open):
    """One served feed recomputed."""

    feed: str


class Artifact(Open):
    """A release artifact: its digest, kind, manifest and verdict."""

    digest: str
    kind: str
    name: str
    verdict: dict[str, Any] | None = None


class Verdict(Open):
    """Whether an artifact is approved, and which reviews count."""

    approved: bool
    counted: list[str]
    missing: str


class Deployed(Open):
    """A release deployed or rolled back."""

    kind: str | None = None
    artifact: str | None = None


class Screening(Open):
    """A screening of names against the restricted-party lists."""

    decision: str | None = None


class Exported(Open):
    """An export through the egress check: allowed or not, and what went."""

    allowed: bool
    ledger_index: int
    data: Any = None


class Flows(Open):
    """The cross-border data flows, aggregated."""

    flows: int


class Boost(Open):
    """A declared boost and its review state."""

    id: str
    video: str
    status: str
    declared_digest: str | None = None


class Revocation(Open):
    """A principal's tokens revoked, and the ledger entry recording it."""

    principal: str
    revoked: list[str] = Field(description="the ids of the tokens revoked")
    ledger_index: int = Field(description="the principal.tokens_revoked entry")
