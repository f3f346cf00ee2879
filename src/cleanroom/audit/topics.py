"""Topics for audits. The platform's own topic tags when it provides them; for
a catalogue without metadata (kuairec-small has none), topics derived from
co-engagement communities: videos liked by the same people belong together.
Every report that uses derived topics says so (``TopicMap.source``).

Derivation: the item-item co-engagement matrix (how many users engaged
positively with both), normalised (cosine), each video's strongest neighbours
kept, and label propagation on that graph — each
video repeatedly takes the label with the greatest total similarity among its
neighbours, in a fixed order, until nothing changes. Deterministic; videos with
no co-engagement form their own topic ``t:isolated``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DERIVED = "derived from co-engagement communities (the catalogue has no topic tags)"
TAGGED = "the platform's topic tags"
ISOLATED = "t:isolated"


@dataclass(frozen=True)
class TopicMap:
    """The topic of every video (from the catalogue's tags or derived from co-engagement), and
    where it came from."""

    topics: dict[str, str]  # video -> topic
    source: str

    def of(self, video: str) -> str:
        return self.topics.get(video, ISOLATED)


def from_tags(videos: Iterable[tuple[str, tuple[str, ...]]]) -> TopicMap:
    """The first tag of each video (untagged videos are isolated)."""
    return TopicMap({v: tags[0] if tags else ISOLATED for v, tags in videos}, TAGGED)


def from_coengagement(
    users: np.ndarray,
    items: np.ndarray,
    item_ids: list[str],
    *,
    min_weight: float = 0.05,
    neighbours: int = 5,
    rounds: int = 30,
) -> TopicMap:
    """Communities of videos from positive engagements (``users[k]`` engaged
    with ``items[k]``; ``item_ids`` names the item indices). Each video keeps
    its ``neighbours`` most similar videos (a dense catalogue where everything
    is co-engaged with everything would otherwise be one community)."""
    n_items = len(item_ids)
    if len(users) != len(items):
        raise ValueError("users and items have the same length")
    if n_items == 0:
        return TopicMap({}, DERIVED)
    n_users = int(users.max()) + 1 if len(users) else 0
    ui = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items)
    )
    ui.data[:] = 1.0  # several engagements of one user with one video count once
    co = (ui.T @ ui).tocsr()
    norms = np.sqrt(co.diagonal())
    norms[norms == 0] = 1.0
    inv = sp.diags(1.0 / norms)
    sim = (inv @ co @ inv).tocsr()
    sim.setdiag(0.0)
    sim.data[sim.data < min_weight] = 0.0
    sim.eliminate_zeros()
    sim = _top_k(sim, neighbours)
    labels = np.arange(n_items)
    for _ in range(rounds):
        changed = 0
        for i in range(n_items):
            start, end = sim.indptr[i], sim.indptr[i + 1]
            if start == end:
                continue
            votes: dict[int, float] = {}
            for j, w in zip(sim.indices[start:end], sim.data[start:end], strict=True):
                votes[labels[j]] = votes.get(labels[j], 0.0) + float(w)
            best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if not changed:
            break
    sizes = Counter(labels.tolist())
    ranked = {lab: n for n, (lab, _) in enumerate(sorted(sizes.items(), key=lambda kv: -kv[1]))}
    has_edges = np.diff(sim.indptr) > 0
    topics = {
        item_ids[i]: (f"t:{ranked[labels[i]]}" if has_edges[i] else ISOLATED)
        for i in range(n_items)
    }
    return TopicMap(topics, DERIVED)


def _top_k(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's k largest entries, made symmetric (an edge kept by either end)."""
    rows, cols, vals = [], [], []
    for i in range(m.shape[0]):
        start, end = m.indptr[i], m.indptr[i + 1]
        if end - start > k:
            keep = np.argpartition(-m.data[start:end], k)[:k] + start
        else:
            keep = np.arange(start, end)
        rows.extend([i] * len(keep))
        cols.extend(m.indices[keep].tolist())
        vals.extend(m.data[keep].tolist())
    top = sp.csr_matrix((vals, (rows, cols)), shape=m.shape)
    return top.maximum(top.T).tocsr()
