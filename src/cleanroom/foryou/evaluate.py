"""Offline evaluation with the protocol of the SIGformer paper (SIGIR 2024):
positives are label >= 1; each test user with at least one test positive gets
all items ranked except those with any training interaction (positive or
negative); Precision@K = hits/K, Recall@K = hits/#test positives, NDCG@K with
the ideal DCG over min(#test positives, K); the mean over those users.

Our engine is measured against popularity, implicit's ALS and EASE in the same
run, on the same splits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cleanroom.foryou.data import Item, TrainingSet
from cleanroom.storage.errors import CleanroomError

Scorer = Callable[[np.ndarray], np.ndarray]  # user indexes -> scores (users x items)
KS = (10, 20)


class EvalError(CleanroomError):
    status = 422
    title = "Bad evaluation input"


@dataclass
class Splits:
    """``user item label`` triples of train/valid/test over one id space."""

    name: str
    n_users: int
    n_items: int
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    user_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)

    def matrix(self, split: str, which: str = "pos") -> sp.csr_matrix:
        u, i, pos = self.parts[split]
        m = {"pos": pos, "neg": ~pos, "all": np.ones_like(pos)}[which]
        x = sp.csr_matrix(
            (np.ones(int(m.sum()), np.float32), (u[m], i[m])), shape=(self.n_users, self.n_items)
        )
        x.sum_duplicates()
        x.data[:] = 1
        return x

    def training_set(self, split: str = "train") -> TrainingSet:
        """The split as engine input: positives are long views, negatives skips."""
        u, i, pos = self.parts[split]
        items = [Item(x, f"unknown:{x}") for x in self.item_ids]
        rows = (
            (self.user_ids[a], self.item_ids[b], "view" if p else "skip", 0, 30_000 if p else 1_000)
            for a, b, p in zip(u.tolist(), i.tolist(), pos.tolist(), strict=True)
        )
        return TrainingSet.from_rows(
            rows,
            items,
            derived=("labels only: no timestamps, creators, topics or regions",),
        )


def read_triples(lines: Iterable[str], where: str) -> Iterator[tuple[str, str, bool]]:
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise EvalError(f"{where}:{n}: expected 'user item label', got {line.strip()[:60]!r}")
        try:
            label = float(parts[2])
        except ValueError:
            raise EvalError(f"{where}:{n}: label {parts[2]!r} is not a number") from None
        yield parts[0], parts[1], label >= 1.0


def load_splits(name: str, files: dict[str, Path | Iterable[str]]) -> Splits:
    """Splits from files (or line iterables) keyed train/valid/test; ids are
    mapped to dense indexes in order of first appearance."""
    uidx: dict[str, int] = {}
    iidx: dict[str, int] = {}
    parts = {}
    for split, src in files.items():
        if isinstance(src, Path):
            if not src.is_file():
                raise EvalError(f"{split} file {src} does not exist")
            lines: Iterable[str] = src.read_text().splitlines()
            where = str(src)
        else:
            lines, where = src, split
        us, its, ls = [], [], []
        for u, i, pos in read_triples(lines, where):
            us.append(uidx.setdefault(u, len(uidx)))
            its.append(iidx.setdefault(i, len(iidx)))
            ls.append(pos)
        if not us:
            raise EvalError(f"the {split} split is empty")
        parts[split] = (np.array(us, np.int64), np.array(its, np.int64), np.array(ls, bool))
    return Splits(name, len(uidx), len(iidx), parts, list(uidx), list(iidx))


def bundled(name: str) -> Splits:
    from importlib import resources

    root = resources.files("cleanroom") / "data" / name
    return load_splits(
        name,
        {s: (root / f"{s}.txt").read_text().splitlines() for s in ("train", "valid", "test")},
    )


def evaluate(
    score: Scorer, splits: Splits, split: str = "test", *, batch: int = 1024, progress: Any = None
) -> dict[str, float]:
    """Precision, Recall and NDCG at 10 and 20 of ``score`` on ``split``."""
    seen = splits.matrix("train", "all")
    truth = splits.matrix(split, "pos")
    users = np.nonzero(np.diff(truth.indptr))[0]
    if not len(users):
        raise EvalError(f"no user has a positive in the {split} split")
    k_max = max(KS)
    disc = 1.0 / np.log2(np.arange(2, k_max + 2))
    sums = {f"{m}@{k}": 0.0 for k in KS for m in ("precision", "recall", "ndcg")}
    for start in range(0, len(users), batch):
        us = users[start : start + batch]
        s = np.array(score(us), dtype=np.float64)
        s[seen[us].nonzero()] = -np.inf
        top = np.argpartition(-s, k_max, axis=1)[:, :k_max]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), 1), 1)
        t = truth[us]
        hits = np.zeros(top.shape, bool)
        for r in range(len(us)):
            hits[r] = np.isin(top[r], t.indices[t.indptr[r] : t.indptr[r + 1]])
        npos = np.diff(t.indptr)
        for k in KS:
            h = hits[:, :k]
            sums[f"precision@{k}"] += float((h.sum(1) / k).sum())
            sums[f"recall@{k}"] += float((h.sum(1) / npos).sum())
            ideal = np.array([disc[: min(n, k)].sum() for n in npos])
            sums[f"ndcg@{k}"] += float(((h * disc[:k]).sum(1) / ideal).sum())
        if progress is not None:
            progress(len(us))
    return {k: round(v / len(users), 5) for k, v in sums.items()}


# -- baselines -------------------------------------------------------------------


def popularity(splits: Splits) -> Scorer:
    pop = np.asarray(splits.matrix("train", "pos").sum(0)).ravel()
    return lambda us: np.broadcast_to(pop, (len(us), len(pop)))


def ease(splits: Splits, l2: float = 500.0) -> Scorer:
    x = splits.matrix("train", "pos")
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = (-p / np.diag(p)).astype(np.float32)
    np.fill_diagonal(b, 0.0)
    return lambda us: np.asarray(x[us] @ b)


def als(
    splits: Splits, factors: int = 64, regularization: float = 0.05, alpha: float = 20.0
) -> Scorer:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    x = splits.matrix("train", "pos")
    with threadpool_limits(1, "blas"):
        m = AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=15, random_state=7
        )
        m.fit((x * alpha).tocsr(), show_progress=False)
    uf, itf = np.asarray(m.user_factors), np.asarray(m.item_factors)
    return lambda us: uf[us] @ itf.T


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t
