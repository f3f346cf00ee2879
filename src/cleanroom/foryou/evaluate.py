"""Offline evaluation with the protocol of the SIGformer paper (SIGIR 2024):
positives are label >= 1; each test user with at least one test positive gets
all items ranked except those with any training interaction (positive or
negative); Precision@K = hits/K, Recall@K = hits/#test positives, NDCG@K with
the ideal DCG over min(#test positives, K); the mean over those users.

Our engine is measured against popularity, EASE, implicit ALS (on engagements,
and with the exposures not engaged as weak positives) and item-kNN in the same
run, on the same splits, each baseline tuned on the validation split."""

from __future__ import annotations

import dataclasses
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
    """A dataset or split the offline evaluation cannot read."""

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


def test_users(splits: Splits, split: str = "test") -> np.ndarray:
    truth = splits.matrix(split, "pos")
    users = np.nonzero(np.diff(truth.indptr))[0]
    if not len(users):
        raise EvalError(f"no user has a positive in the {split} split")
    return users


def metrics(
    top: np.ndarray, users: np.ndarray, splits: Splits, split: str = "test"
) -> dict[str, float]:
    """Precision, Recall and NDCG at 10 and 20 of ranked lists ``top`` (one row
    of item indexes per user of ``users``, -1 for an empty slot)."""
    truth = splits.matrix(split, "pos")[users]
    k_max = max(KS)
    disc = 1.0 / np.log2(np.arange(2, k_max + 2))
    hits = np.zeros((len(users), k_max), bool)
    for r in range(len(users)):
        row = top[r, :k_max]
        hits[r, : len(row)] = np.isin(row, truth.indices[truth.indptr[r] : truth.indptr[r + 1]])
    npos = np.diff(truth.indptr)
    out = {}
    for k in KS:
        h = hits[:, :k]
        ideal = np.array([disc[: min(n, k)].sum() for n in npos])
        out[f"precision@{k}"] = float((h.sum(1) / k).mean())
        out[f"recall@{k}"] = float((h.sum(1) / npos).mean())
        out[f"ndcg@{k}"] = float(((h * disc[:k]).sum(1) / ideal).mean())
    return {k: round(v, 5) for k, v in out.items()}


def evaluate(
    score: Scorer, splits: Splits, split: str = "test", *, batch: int = 1024, progress: Any = None
) -> dict[str, float]:
    """Metrics of a scorer that ranks all items (training items excluded)."""
    seen = splits.matrix("train", "all")
    users = test_users(splits, split)
    k_max = max(KS)
    tops = []
    for start in range(0, len(users), batch):
        us = users[start : start + batch]
        s = np.array(score(us), dtype=np.float64)
        s[seen[us].nonzero()] = -np.inf
        top = np.argpartition(-s, k_max, axis=1)[:, :k_max]
        tops.append(np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), 1), 1))
        if progress is not None:
            progress(len(us))
    return metrics(np.vstack(tops), users, splits, split)


def evaluate_engine(
    splits: Splits, config: Any = None, split: str = "test", *, progress: Any = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Our engine as served: trained on ``train`` (what adapts to the data
    chosen on ``valid`` when there is one, else on engagements held out of
    ``train``), each test user's feed (retrieval, ranking, re-ranking; what
    they interacted with in training is seen and never shown), its first 20
    items scored."""
    from cleanroom.foryou.engine import Engine
    from cleanroom.foryou.model import Model
    from cleanroom.foryou.ranker import RankingConfig
    from cleanroom.foryou.tuning import choose_blend

    cfg = config or RankingConfig.shipped()
    cfg = dataclasses.replace(cfg, exploration=0.0)
    t = time.perf_counter()
    engine = Engine(cfg, clock=lambda: 1.0)
    data = splits.training_set()
    if "valid" in splits.parts and split != "valid":
        engine.bootstrap(data, train=False)
        model = Model.train(data, cfg.model, cfg.priors)
        engine.swap(model)
        valid = splits.matrix("valid", "pos")
        truth = {
            splits.user_ids[u]: {splits.item_ids[j] for j in valid[u].indices}
            for u in np.nonzero(np.diff(valid.indptr))[0]
        }
        model.tuned(choose_blend(engine, truth, "the validation split"))
        engine.swap(model)  # (under its new version)
    else:
        engine.bootstrap(data)
    train_s = time.perf_counter() - t
    users = test_users(splits, split)
    index = {v: n for n, v in enumerate(splits.item_ids)}
    k_max = max(KS)
    top = np.full((len(users), k_max), -1, np.int64)
    t = time.perf_counter()
    for r, u in enumerate(users):
        feed = engine.feed(splits.user_ids[u], limit=k_max, seed="eval", now_ms=1000)
        row = [index[i.video] for i in feed.items]
        top[r, : len(row)] = row
        if progress is not None and r % 256 == 255:
            progress(256)
    if progress is not None:
        progress(len(users) % 256)
    feed_s = time.perf_counter() - t
    info = {
        "train_seconds": round(train_s, 2),
        "feed_ms_mean": round(1000 * feed_s / len(users), 3),
        "model": engine.model.describe(),
    }
    return metrics(top, users, splits, split), info


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
    return _als(splits.matrix("train", "pos"), factors, regularization, alpha)


def als_weak(
    splits: Splits,
    factors: int = 64,
    regularization: float = 1.0,
    alpha: float = 5.0,
    weak: float = 0.3,
) -> Scorer:
    """Implicit ALS with the exposures that were not engaged (label 0: shown,
    skipped) as weak positives, confidence ``weak`` of an engagement's."""
    pos, shown = splits.matrix("train", "pos"), splits.matrix("train", "neg")
    shown = shown - shown.multiply(pos)  # (an engaged video is a positive, not weak)
    return _als((pos + weak * shown).tocsr(), factors, regularization, alpha)


def _als(x: sp.csr_matrix, factors: int, regularization: float, alpha: float) -> Scorer:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        m = AlternatingLeastSquares(
            factors=factors, regularization=regularization, iterations=15, random_state=7
        )
        m.fit((x * alpha).tocsr(), show_progress=False)
    uf, itf = np.asarray(m.user_factors), np.asarray(m.item_factors)
    return lambda us: uf[us] @ itf.T


def itemknn(splits: Splits, k: int = 100, shrink: float = 10.0) -> Scorer:
    """Item-based k-nearest neighbours: cosine similarity of the items'
    training positives (shrunk towards 0 for items with few users in common),
    each item's ``k`` most similar kept; a user's score of an item is the sum
    of its similarities to what they engaged with."""
    x = splits.matrix("train", "pos").astype(np.float32)
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (np.outer(norms, norms) + shrink + 1e-9)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:  # keep each item's k nearest (per column)
        cut = np.partition(sim, -k, axis=0)[-k]
        sim[sim < cut[None, :]] = 0.0
    s = sp.csr_matrix(sim.astype(np.float32))
    return lambda us: (x[us] @ s).toarray()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# Hyper-parameter grids of the baselines, chosen by NDCG@20 on ``valid``.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "ease": [{"l2": v} for v in (100.0, 500.0, 2000.0)],
    "als": [
        {"factors": f, "regularization": r, "alpha": a}
        for f in (16, 32, 64)
        for r in (1.0, 10.0)
        for a in (1.0, 5.0, 20.0)
    ],
    "als_weak": [
        {"factors": f, "regularization": r, "alpha": a, "weak": w}
        for f in (16, 64)
        for r in (10.0, 50.0)
        for a in (5.0, 20.0, 50.0)
        for w in (0.1, 0.3, 0.6)
    ],
    "itemknn": [{"k": k, "shrink": sh} for k in (20, 100, 500, 2000) for sh in (0.0, 10.0)],
}


def _tuned(build: Callable[..., Scorer], splits: Splits) -> tuple[Scorer, dict[str, Any]]:
    """The baseline with the grid point best on the validation split (the
    first one when there is no validation split)."""
    grid = GRIDS[build.__name__]
    if len(grid) == 1 or "valid" not in splits.parts:
        return build(splits, **grid[0]), grid[0]
    best: tuple[float, Scorer, dict[str, Any]] | None = None
    for params in grid:
        scorer = build(splits, **params)
        ndcg = evaluate(scorer, splits, "valid")["ndcg@20"]
        if best is None or ndcg > best[0]:
            best = (ndcg, scorer, params)
    assert best is not None
    return best[1], best[2]


# every baseline, tuned on ``valid`` in the same run (popularity has nothing to tune)
BASELINES: tuple[tuple[str, Callable[..., Scorer]], ...] = (
    ("popularity", popularity),
    ("ease", ease),
    ("als", als),
    ("als_weak", als_weak),
    ("itemknn", itemknn),
)

# -- the evaluation run --------------------------------------------------------------

PROTOCOL = (
    "SIGformer (SIGIR 2024): positives are label >= 1; every item ranked except the "
    "user's training interactions; P/R/NDCG at 10 and 20, mean over users with a test "
    "positive"
)


def run(
    sources: list[tuple[str, dict[str, Path] | None]],
    *,
    split: str = "test",
    baselines: bool = True,
    quiet: bool = False,
    config: Any = None,
) -> list[dict[str, Any]]:
    """Evaluate our engine (and the baselines) on each source: a bundled
    dataset name with ``None``, or a name with files keyed train/valid/test."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    return [
        _run_one(name, files, split, baselines, console, config, quiet) for name, files in sources
    ]


def _run_one(
    name: str,
    files: dict[str, Path] | None,
    split: str,
    baselines: bool,
    console: Any,
    config: Any,
    quiet: bool,
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    splits = bundled(name) if files is None else load_splits(name, dict(files))
    if split not in splits.parts:
        raise EvalError(f"{name} has no {split} split")
    users = len(test_users(splits, split))
    models: dict[str, Any] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=quiet,
    ) as bar:

        def step(label: str) -> Callable[[int], None]:
            task = bar.add_task(f"{name}: {label}", total=users)
            return lambda n: bar.advance(task, n)

        m, info = evaluate_engine(splits, config, split, progress=step("foryou (ours)"))
        models["foryou"] = {
            **m,
            "train_seconds": info["train_seconds"],
            "feed_ms_mean": info["feed_ms_mean"],
        }
        if baselines:
            for label, build in BASELINES:
                (scorer, params), seconds = timed(lambda b=build: _tuned(b, splits))
                models[label] = {
                    **evaluate(scorer, splits, split, progress=step(label)),
                    "train_seconds": round(seconds, 2),
                    "params": params,
                }
    return {
        "dataset": name,
        "split": split,
        "users": users,
        "items": splits.n_items,
        "protocol": PROTOCOL,
        "models": models,
        "derived": list(info["model"]["derived"]),
    }


def table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    cols = ["precision@10", "recall@10", "ndcg@10", "precision@20", "recall@20", "ndcg@20"]
    t = Table(
        "model",
        *cols,
        "train s",
        title=f"{result['dataset']} ({result['split']}, {result['users']} users)",
        caption="derived: " + "; ".join(result["derived"]) if result["derived"] else None,
    )
    best = {c: max(m[c] for m in result["models"].values()) for c in cols}
    for name, m in result["models"].items():
        cells = [f"[bold]{m[c]:.4f}[/bold]" if m[c] == best[c] else f"{m[c]:.4f}" for c in cols]
        t.add_row(
            name + (" (ours)" if name == "foryou" else ""), *cells, f"{m['train_seconds']:.1f}"
        )
    return t


def plot_results(results: list[dict[str, Any]], path: Path) -> None:
    """Recall@20 and NDCG@20 per model and dataset, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric in zip(axes, ("recall@20", "ndcg@20"), strict=True):
        names = list(results[0]["models"])
        width = 0.8 / len(names)
        for k, model in enumerate(names):
            vals = [r["models"][model][metric] for r in results]
            ax.bar(np.arange(len(results)) + k * width, vals, width, label=model)
        ax.set_xticks(np.arange(len(results)) + 0.4 - width / 2)
        ax.set_xticklabels([r["dataset"] for r in results])
        ax.set_title(f"{metric} ({results[0]['split']})")
    axes[0].legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
