"""What an event says about a user's taste: the engagement kinds the ranker
predicts and the training signal of every event kind.

A ``view`` counts as a *long view* when the user watched at least
``LONG_VIEW_MS``; shorter views are negative feedback like skips (the
Kuaishou logs are mostly such negatives)."""

from __future__ import annotations

from typing import Literal

# The engagement kinds the ranker predicts (their weights are published
# configuration: ranking.json).
HEADS = ("long_view", "like", "share", "skip")

LONG_VIEW_MS = 10_000

Signal = Literal["positive", "negative", "neutral"]


def engagement(kind: str, watch_ms: int) -> str:
    """The engagement an event records: its kind, with views split into long
    and short ones."""
    if kind == "view":
        return "long_view" if watch_ms >= LONG_VIEW_MS else "short_view"
    return kind


def signal(engagement_kind: str) -> Signal:
    if engagement_kind in ("long_view", "like", "share", "comment", "follow"):
        return "positive"
    if engagement_kind in ("short_view", "skip", "not_interested"):
        return "negative"
    return "neutral"


def head_of(engagement_kind: str) -> str | None:
    """The ranking head an engagement trains (short views train ``skip``)."""
    if engagement_kind in ("long_view", "like", "share"):
        return engagement_kind
    if engagement_kind in ("skip", "short_view", "not_interested"):
        return "skip"
    return None
