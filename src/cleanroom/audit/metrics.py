"""Audit metrics over what a feed showed, as the published audits of TikTok's
feed measure it. Pure functions over lists of shown items (each with its
topic and creator); no dependency on the engine, so an oversight body can run
them on what its sock puppets saw or on exposure aggregates.

- ``topic_share_curve``: the share of a topic among the videos shown, per
  window of the session (a rising curve is a "rabbit hole").
- ``first_exposure``: how many videos (and how long) until the first video of a
  flagged topic.
- ``exploit_fraction``: the share of recommendations that match the persona's
  known interests.
- ``entropy`` (Shannon, bits, of topics or creators) and ``gini`` (of exposure
  across creators).
- ``top_share``: the share of impressions going to the top fraction of creators
  (concentration).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Shown:
    """One video as a feed showed it."""

    video: str
    topic: str
    creator: str
    watch_ms: int = 0


def topic_share_curve(shown: Sequence[Shown], topic: str, window: int = 10) -> list[float]:
    """The share of ``topic`` in each consecutive window of ``window`` videos."""
    if window < 1:
        raise ValueError("window is at least 1")
    out = []
    for start in range(0, len(shown), window):
        part = shown[start : start + window]
        out.append(sum(1 for s in part if s.topic == topic) / len(part))
    return out


def first_exposure(shown: Sequence[Shown], flagged: set[str]) -> tuple[int, int] | None:
    """(videos before the first flagged one, their watch time in ms), or None
    when no flagged video was shown."""
    watched = 0
    for n, s in enumerate(shown):
        if s.topic in flagged:
            return n, watched
        watched += s.watch_ms
    return None


def exploit_fraction(shown: Sequence[Shown], interests: set[str]) -> float:
    """The share of shown videos whose topic is one of the known interests."""
    if not shown:
        return 0.0
    return sum(1 for s in shown if s.topic in interests) / len(shown)


def entropy(values: Iterable[Hashable]) -> float:
    """Shannon entropy in bits of the distribution of ``values``."""
    return entropy_of_counts(Counter(values).values())


def entropy_of_counts(counts: Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by its counts."""
    counts = [c for c in counts if c > 0]
    total = sum(counts)
    if total == 0:
        return 0.0
    return -sum((c / total) * math.log2(c / total) for c in counts) + 0.0


def gini(counts: Iterable[float]) -> float:
    """Gini coefficient of non-negative amounts (0: equal, toward 1: one takes all)."""
    xs = sorted(float(c) for c in counts)
    if any(x < 0 for x in xs):
        raise ValueError("Gini is over non-negative amounts")
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return 0.0
    cum = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * cum) / (n * total) - (n + 1) / n


def top_share(impressions: dict[str, int], fraction: float = 0.01) -> float:
    """The share of impressions that the top ``fraction`` of creators (at least
    one) received."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction is in (0, 1]")
    total = sum(impressions.values())
    if total == 0:
        return 0.0
    k = max(1, math.ceil(len(impressions) * fraction - 1e-9))
    return sum(sorted(impressions.values(), reverse=True)[:k]) / total
