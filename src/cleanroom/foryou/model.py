"""The trained part of the For You engine, built so that forgetting a user is
exact and cheap.

- **Item-item model** (EASE, Steck 2019): ``B = I - P/diag(P)`` with
  ``P = (XᵀX + λI)⁻¹`` over ``X = positives + α·negatives``. A user's
  contribution to ``XᵀX`` is the rank-one ``xᵀx``, so deleting them is a
  Sherman-Morrison downdate of ``P``: the result equals the model trained
  without them, up to floating point.
- **Embeddings**: the top eigenvectors of ``XᵀX`` (PureSVD's item space),
  recomputed from the downdated Gram matrix; a user is the fold-in of their
  history. Candidates come from a faiss inner-product index over them.
- **Counts**: positive and negative engagements per item (downdated by
  subtraction).
- **Ranking heads**: one logistic regression per engagement kind
  (``signals.HEADS``) over the features in ``FEATURES``, fitted on each user's
  engagements and on unwatched videos sampled per user with a seed derived from
  the user id, so removing a user removes exactly their examples and a refit
  gives the model trained without them.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.sparse.linalg import ArpackError, eigsh

from cleanroom.foryou.data import NEGATIVE_CODES, POSITIVE_CODES, TrainingSet
from cleanroom.foryou.signals import HEADS

FEATURES = (
    "similar_liked",  # p_u · B[:, i]: videos co-engaged with what you liked
    "similar_skipped",  # n_u · B[:, i]: ... with what you skipped
    "taste",  # fold-in embedding score
    "popular",  # log(1 + positive engagements)
    "exposure",  # log(1 + all engagements)
    "region_popular",  # log(1 + positive engagements in the user's region)
    "rising",  # recent vs usual popularity
    "followed_creator",  # 1 if the user follows the creator
    "fresh",  # exp(-age / 1 day)
    "co_engaged",  # log(1 + online co-engagement with the user's recent likes)
    "affinity",  # log of the item-item score of everything you engaged with (exposure)
    "topic_share",  # of the videos with this one's topic you engaged with, the share you liked
)
AFFINITY_FLOOR = 1e-3
# The value of each feature when its source is absent (what an explanation's
# contribution is measured against).
BASELINE = np.zeros(len(FEATURES))
BASELINE[FEATURES.index("affinity")] = np.log(AFFINITY_FLOOR)
F = {f: n for n, f in enumerate(FEATURES)}


@dataclass(frozen=True)
class ModelConfig:
    """The item model's hyper-parameters (regularisation, negatives, factors)."""

    l2: float = 500.0
    dropout: float = 0.0  # EDLAE (Steck 2020): extra L2 of p/(1-p)·diag(XᵀX) per item
    negative_weight: float = 0.3
    factors: int = 64
    sample_ratio: float = 2.0
    max_items: int = 6000
    max_rows: int = 400_000
    # per head: features it does not use, and whether it learns only from
    # videos the user was shown (P(kind | shown)) rather than from those and
    # unwatched ones (P(kind))
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shown_only: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        base = cls()
        out: dict[str, Any] = {}
        for k, v in d.items():
            if k == "exclude":
                out[k] = {h: tuple(fs) for h, fs in v.items()}
                for fs in out[k].values():
                    if bad := set(fs) - set(FEATURES):
                        raise ValueError(f"unknown features {sorted(bad)}")
            elif k == "shown_only":
                out[k] = tuple(v)
            elif hasattr(base, k):
                out[k] = type(getattr(base, k))(v)
            else:
                raise ValueError(f"unknown model setting {k!r}")
        return cls(**out)


@dataclass
class Head:
    """logit = intercept + coef · features (raw feature scale)."""

    coef: np.ndarray
    intercept: float
    examples: int
    positives: int

    def logit(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {
            "coef": dict(zip(FEATURES, map(float, self.coef), strict=True)),
            "intercept": self.intercept,
            "examples": self.examples,
            "positives": self.positives,
        }


def affinity(sim_liked: np.ndarray, sim_skipped: np.ndarray) -> np.ndarray:
    """The affinity feature: log of the item-item score of everything engaged
    with (liked or skipped), floored."""
    return np.log(np.maximum(sim_liked + sim_skipped, AFFINITY_FLOOR))


def topic_share(liked: np.ndarray, engaged: np.ndarray, prior: float) -> np.ndarray:
    """The topic-share feature: of the videos with a video's (first) topic tag
    that the user engaged with, the share they engaged with positively, with
    one pseudo-engagement at the overall positive rate ``prior``, centred on
    it (0: nothing known, as for a new viewer or an untagged video)."""
    return (liked + prior) / (engaged + 1.0) - prior


def fit_head(x: np.ndarray, y: np.ndarray, priors: dict[str, float], l2: float = 1e-3) -> Head:
    """L2-regularised logistic regression on standardised features; features
    without variance get their published prior coefficient."""
    if not len(y):
        x = np.zeros((1, len(FEATURES)))
    mu = x.mean(0)
    sd = x.std(0)
    live = sd > 1e-9
    z = (x[:, live] - mu[live]) / sd[live]
    z = np.hstack([z, np.ones((len(z), 1))])
    yf = y.astype(np.float64)
    pos = int(y.sum())

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ w
        # log(1 + e^s) - y s, stably
        value = np.logaddexp(0.0, s).sum() - yf @ s
        p = 0.5 * (1.0 + np.tanh(0.5 * s))
        grad = z.T @ (p - yf)
        reg = l2 * len(z)
        value += reg * (w[:-1] @ w[:-1])
        grad[:-1] += 2 * reg * w[:-1]
        return value / len(z), grad / len(z)

    coef = np.zeros(len(FEATURES))
    intercept = -20.0 if len(y) else 0.0
    if pos and pos < len(y):
        w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x
        coef[live] = w[:-1] / sd[live]
        intercept = float(w[-1] - (w[:-1] * mu[live] / sd[live]).sum())
    for name, c in priors.items():
        if not live[F[name]]:
            coef[F[name]] = c
    return Head(coef, intercept, len(y), pos)


def _positive_rate(pos: np.ndarray, neg: np.ndarray) -> float:
    total = float(np.sum(pos) + np.sum(neg))
    return float(np.sum(pos)) / total if total else 0.0


def _stable_seed(user: str) -> int:
    return int.from_bytes(hashlib.sha256(b"foryou-sample:" + user.encode()).digest()[:8], "big")


@dataclass
class Model:
    """A trained item model: item-item weights, embeddings and the index over them, with the
    engagement counts behind them."""

    config: ModelConfig
    priors: dict[str, dict[str, float]]
    items: list[str]
    data: TrainingSet
    gone: set[str] = field(default_factory=set)  # users forgotten since training
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # head items
    # derived state (computed by _refresh)
    gram: np.ndarray = field(init=False, repr=False)  # XᵀX over the head items
    inverse: np.ndarray = field(init=False, repr=False)  # (XᵀX + λI)⁻¹
    B: np.ndarray = field(init=False, repr=False)
    V: np.ndarray = field(init=False, repr=False)
    pos: np.ndarray = field(init=False, repr=False)
    neg: np.ndarray = field(init=False, repr=False)
    heads: dict[str, Head] = field(init=False, repr=False)
    version: str = field(init=False)
    stale: bool = field(init=False, default=False)
    # chosen on held-out data (``tuning``): weights of features added to the
    # heads' score, and the record of the choice (the model card's)
    blend: dict[str, float] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)

    # -- training ---------------------------------------------------------------

    @classmethod
    def train(
        cls,
        data: TrainingSet,
        config: ModelConfig | None = None,
        priors: dict[str, dict[str, float]] | None = None,
    ) -> Model:
        config = config or ModelConfig()
        m = cls(config, priors or {}, [], data)
        m.columns = m._head(data, config.max_items)
        m.items = [data.items[j] for j in m.columns]
        p, n = m._matrices()
        x = (p + config.negative_weight * n).tocsr()
        m._rows_x = x  # each user's row, kept for the downdate when they are forgotten
        m.gram = np.asarray((x.T @ x).toarray(), np.float64)
        a = m.gram.copy(order="F")
        a[np.diag_indices_from(a)] += config.l2 + m._drop * np.diag(m.gram)
        # inverted in place (LU in LAPACK's own buffer): no second and third
        # copy of an items x items matrix at the peak of training
        m.inverse = scipy.linalg.inv(a, overwrite_a=True, check_finite=False)
        del a
        m._refresh(p, n)
        return m

    @property
    def _drop(self) -> float:
        p = self.config.dropout
        return p / (1.0 - p)

    @property
    def index_of(self) -> dict[str, int]:
        cached = getattr(self, "_index_of", None)
        if cached is None:
            cached = self._index_of = {v: n for n, v in enumerate(self.items)}
        return cached

    def names(self, indexes: np.ndarray) -> list[str]:
        """The video ids of model indexes."""
        cached = getattr(self, "_names", None)
        if cached is None or len(cached) != len(self.items):
            cached = self._names = np.array(self.items, dtype=object)
        return cached[indexes].tolist()

    @property
    def _uidx(self) -> dict[str, int]:
        cached = getattr(self, "_uidx_cache", None)
        if cached is None:
            cached = self._uidx_cache = {u: n for n, u in enumerate(self.data.users)}
        return cached

    @staticmethod
    def _head(data: TrainingSet, max_items: int) -> np.ndarray:
        """The snapshot's items the item-item model covers: all of them, or the
        ``max_items`` most engaged (a large catalog's tail is served by the
        popular, fresh, followed and co-engagement sources). Fixed at training,
        so forgetting a user downdates the same head a retraining would use."""
        n = len(data.items)
        if n <= max_items:
            return np.arange(n)
        counts = np.bincount(data.i, minlength=n)
        top = np.lexsort((np.arange(n), -counts))[:max_items]
        return np.sort(top)

    def _matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        p, n = self.data.positives(), self.data.negatives()
        # (a forgotten user's rows have left ``data`` already)
        if len(self.columns) != p.shape[1]:
            p, n = p[:, self.columns].tocsr(), n[:, self.columns].tocsr()
        return p, n

    def _refresh(self, p: sp.csr_matrix, n: sp.csr_matrix) -> None:
        """Everything derived from the Gram matrix, its inverse and the rows
        (``p``, ``n``: positives and negatives over the head items)."""
        inv = self.inverse
        d = np.diag(inv)
        b = np.empty(inv.shape, np.float32)  # no items x items float64 temporary
        np.divide(inv, -d, out=b, casting="unsafe")
        np.fill_diagonal(b, 0.0)
        self.B = b
        k = min(self.config.factors, len(self.items) - 1)
        if k >= 1 and self.gram.any():
            v0 = np.ones(len(self.items))
            try:
                vals, vecs = eigsh(self.gram, k=k, which="LA", v0=v0, tol=1e-10)
            except ArpackError:  # e.g. ones orthogonal to every engaged item
                vals, vecs = np.linalg.eigh(self.gram)
                vals, vecs = vals[-k:], vecs[:, -k:]
            order = np.argsort(-vals)
            vecs = vecs[:, order]
            # a canonical sign per vector (its largest component positive)
            signs = np.sign(vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])])
            self.V = np.ascontiguousarray((vecs * signs).astype(np.float32))
        else:
            self.V = np.zeros((len(self.items), 1), np.float32)
        self.pos = np.asarray(p.sum(0)).ravel()
        self.neg = np.asarray(n.sum(0)).ravel()
        self._p, self._n = p, n
        self.share_prior = _positive_rate(self.pos, self.neg)
        self.index = faiss.IndexFlatIP(self.V.shape[1])
        self.index.add(self.V)
        self.heads = self._fit_heads()
        self.head_matrix = (
            np.stack([self.heads[h].coef for h in HEADS], 1),
            np.array([self.heads[h].intercept for h in HEADS]),
        )
        self.version = self._digest()

    # -- exact deletion ------------------------------------------------------------

    def forget(self, user: str, *, refresh: bool = True) -> bool:
        """Remove a user from the model: downdate the Gram matrix and its
        inverse by their row, drop their counts and examples, refit the heads.
        With ``refresh=False`` only the downdate happens (cheap) and the derived
        parts wait for :meth:`refresh` (batch deletions). Returns False if the
        model never saw the user."""
        n = self._uidx.get(user)
        if n is None or user in self.gone:
            return False
        row = self._rows_x[n].copy()
        # the kept row is erased with the user: nothing of them stays in memory
        xs = self._rows_x
        xs.data[xs.indptr[n] : xs.indptr[n + 1]] = 0.0
        self.data = self.data.without({user})  # their engagement rows, too
        self.gone.add(user)
        if row.nnz:
            idx = row.indices
            x = row.data
            # A = XᵀX + λI + c·diag(XᵀX) loses M = xᵀx + c·diag(x²) on the user's
            # items: a rank-k Woodbury downdate of A⁻¹ (k = the user's items),
            # (A - E M Eᵀ)⁻¹ = A⁻¹ + A⁻¹E (M⁻¹ - EᵀA⁻¹E)⁻¹ EᵀA⁻¹
            m = np.outer(x, x)
            m[np.diag_indices_from(m)] += self._drop * x * x
            self.gram[np.ix_(idx, idx)] -= np.outer(x, x)
            cols = self.inverse[:, idx]
            inner = np.linalg.inv(m) - cols[idx] if self._drop else None
            if inner is None:  # rank one: Sherman-Morrison
                w = cols @ x
                self.inverse += np.outer(w, w) / (1.0 - x @ w[idx])
            else:
                self.inverse += cols @ np.linalg.solve(inner, cols.T)
        self.stale = True
        if refresh:
            self.refresh()
        return True

    def refresh(self) -> None:
        """Recompute what derives from the Gram matrix after downdates."""
        if self.stale:
            self._refresh(*self._matrices())
            self.stale = False

    # -- features -----------------------------------------------------------------

    def user_vectors(self, p_items: np.ndarray, n_items: np.ndarray) -> tuple[np.ndarray, ...]:
        """(liked-similarity, skipped-similarity, taste) over all items for a
        user whose history has liked items ``p_items`` and skipped ``n_items``
        (item indexes)."""
        sim_p = self.B[p_items].sum(0) if len(p_items) else np.zeros(len(self.items), np.float32)
        sim_n = self.B[n_items].sum(0) if len(n_items) else np.zeros(len(self.items), np.float32)
        q = self.V[p_items].sum(0) if len(p_items) else np.zeros(self.V.shape[1], np.float32)
        return sim_p, sim_n, q

    def _example_rows(
        self,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Training examples of the heads: every engagement of a user still in
        the model, plus unwatched items sampled per user (seeded by the user id),
        with each row's place in its user's history (time, stored order; the
        end of it for a sample)."""
        col = np.full(len(self.data.items), -1, np.int64)
        col[self.columns] = np.arange(len(self.columns))
        keep = col[self.data.i] >= 0
        u, i = self.data.u[keep], col[self.data.i[keep]].astype(np.int32)
        # each row's place in the user's history (time, then stored order)
        when = np.stack([self.data.ts[keep], np.nonzero(keep)[0]], 1).astype(np.int64)
        labels = {h: y[keep] for h, y in self.data.head_labels().items()}
        nu, ni = len(self.data.users), len(self.columns)
        counts = np.bincount(u, minlength=nu)
        su: list[np.ndarray] = []
        si: list[np.ndarray] = []
        for n in np.nonzero(counts)[0]:
            k = int(np.ceil(counts[n] * self.config.sample_ratio))
            rng = np.random.default_rng(_stable_seed(self.data.users[n]))
            su.append(np.full(k, n, np.int32))
            si.append(rng.integers(0, ni, k, dtype=np.int32))
        shown = np.ones(len(u), bool)
        if su:
            u = np.concatenate([u, *su])
            i = np.concatenate([i, *si])
            extra = sum(len(s) for s in su)
            labels = {h: np.concatenate([y, np.zeros(extra, bool)]) for h, y in labels.items()}
            # an unwatched sample is scored with the whole history, as at serving
            when = np.concatenate([when, np.full((extra, 2), np.iinfo(np.int64).max)])
            shown = np.concatenate([shown, np.zeros(extra, bool)])
        if len(u) > self.config.max_rows:
            # a deterministic subsample keyed by (user id, item): independent of
            # which other users are in the snapshot
            seeds = np.array([_stable_seed(x) for x in self.data.users], np.uint64)
            key = (seeds[u] ^ (i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(
                0xBF58476D1CE4E5B9
            )
            order = np.argsort(key, kind="stable")[: self.config.max_rows]
            order.sort()
            u, i, shown, when = u[order], i[order], shown[order], when[order]
            labels = {h: y[order] for h, y in labels.items()}
        return u, i, labels, shown, when

    def example_features(
        self, u: np.ndarray, i: np.ndarray, when: np.ndarray | None = None
    ) -> np.ndarray:
        """Leave-one-out features of (user, item) pairs from the training rows:
        the pair's own engagement does not count towards its features."""
        p, n = self._p, self._n
        out = np.zeros((len(u), len(FEATURES)), np.float64)
        if not len(u):
            return out
        own_p = np.asarray(p[u, i]).ravel()
        own_n = np.asarray(n[u, i]).ravel()
        order = np.argsort(u, kind="stable")
        bounds = np.searchsorted(u[order], np.arange(p.shape[0] + 1))
        chunk = 512
        for start in range(0, p.shape[0], chunk):
            lo, hi = bounds[start], bounds[min(start + chunk, p.shape[0])]
            if lo == hi:
                continue
            rows = order[lo:hi]
            uu = u[rows] - start
            ii = i[rows]
            pb = p[start : start + chunk]
            nb = n[start : start + chunk]
            out[rows, F["similar_liked"]] = (pb @ self.B)[uu, ii]
            out[rows, F["similar_skipped"]] = (nb @ self.B)[uu, ii]
            q = pb @ self.V
            out[rows, F["taste"]] = (q[uu] * self.V[ii]).sum(1)
        out[:, F["affinity"]] = affinity(out[:, F["similar_liked"]], out[:, F["similar_skipped"]])
        vv = (self.V.astype(np.float64) ** 2).sum(1)
        out[:, F["taste"]] -= own_p * vv[i]
        pos = self.pos[i] - own_p
        neg = self.neg[i] - own_n
        out[:, F["popular"]] = np.log1p(pos)
        out[:, F["exposure"]] = np.log1p(pos + neg)
        self._topic_features(out, u, i, when)
        # region_popular, rising, followed_creator, fresh and co_engaged come from
        # online state at serving time; the snapshot cannot teach them (priors)
        return out

    def _topic_features(
        self, out: np.ndarray, u: np.ndarray, i: np.ndarray, when: np.ndarray | None
    ) -> None:
        """The topic share of (user, item) pairs as ordered statistics: from
        the videos of the item's topic (first tag) the user engaged with
        *before* (``when``: time and stored order of the pair's row; the whole
        history without one, as at serving), never the pair's own video.
        Leave-one-out would not do: taking a liked pair's own like out of its
        share, and not a skipped pair's skip, makes liked pairs look less like
        their topic."""
        names: dict[str, int] = {}
        tag = np.full(len(self.items), -1, np.int64)
        for n, v in enumerate(self.items):
            it = self.data.catalog.get(v)
            if it is not None and it.topics:
                tag[n] = names.setdefault(it.topics[0], len(names))
        if not names:
            return  # an untagged catalogue: the feature stays 0
        if when is None:
            when = np.full((len(u), 2), np.iinfo(np.int64).max)
        # the (user, video) pairs engaged with (liked or skipped): where in the
        # user's history each was first, and whether it was liked
        col = np.full(len(self.data.items), -1, np.int64)
        col[self.columns] = np.arange(len(self.columns))
        d = self.data
        signed = POSITIVE_CODES[d.code] | NEGATIVE_CODES[d.code]
        rows = np.nonzero((col[d.i] >= 0) & signed)[0]
        code = d.u[rows].astype(np.int64) * len(self.items) + col[d.i[rows]]
        o = np.lexsort((rows, d.ts[rows], code))
        rows, code = rows[o], code[o]
        firsts = np.nonzero(np.r_[True, code[1:] != code[:-1]])[0]
        pairs = code[firsts]  # sorted
        liked = np.logical_or.reduceat(POSITIVE_CODES[d.code[rows]], firsts)
        first = rows[firsts]
        pu, pt = d.u[first].astype(np.int64), tag[col[d.i[first]]]
        pw = np.stack([d.ts[first], first], 1).astype(np.int64)
        keep = pt >= 0
        pu, pt, pw, pl = pu[keep], pt[keep], pw[keep], liked[keep]
        q = np.nonzero(tag[i] >= 0)[0]
        qu, qt, qw = u[q].astype(np.int64), tag[i[q]], when[q]
        # pairs and queries in one order (user, topic, time, stored order; a
        # query before a pair at the same place): the pairs before each query
        flag = np.r_[np.ones(len(pu), np.int8), np.zeros(len(q), np.int8)]
        uu, tt, ww = np.r_[pu, qu], np.r_[pt, qt], np.r_[pw, qw]
        order = np.lexsort((flag, ww[:, 1], ww[:, 0], tt, uu))
        is_pair = flag[order].astype(np.int64)
        is_liked = np.r_[pl, np.zeros(len(q), bool)][order].astype(np.int64)
        before_e, before_l = np.cumsum(is_pair) - is_pair, np.cumsum(is_liked) - is_liked
        new = np.r_[True, (uu[order][1:] != uu[order][:-1]) | (tt[order][1:] != tt[order][:-1])]
        start = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))
        is_q = flag[order] == 0
        at = order[is_q] - len(pu)
        engaged = np.zeros(len(q))
        likes = np.zeros(len(q))
        engaged[at] = (before_e - before_e[start])[is_q]
        likes[at] = (before_l - before_l[start])[is_q]
        # a later row of a pair (a like after its view) must not count the pair
        qcode = qu * len(self.items) + i[q]
        own = np.minimum(np.searchsorted(pairs, qcode), max(0, len(pairs) - 1))
        mine = pairs[own] == qcode if len(pairs) else np.zeros(len(q), bool)
        if len(pairs):
            fw = np.stack([d.ts[first[own]], first[own]], 1)
            before = (fw[:, 0] < qw[:, 0]) | ((fw[:, 0] == qw[:, 0]) & (fw[:, 1] < qw[:, 1]))
            earlier = mine & before
            engaged -= earlier
            likes -= earlier & liked[own]
        out[q, F["topic_share"]] = topic_share(likes, engaged, self.share_prior)

    def _fit_heads(self) -> dict[str, Head]:
        u, i, labels, shown, when = self._example_rows()
        x = self.example_features(u, i, when)
        heads = {}
        for h in HEADS:
            xh, yh = (x[shown], labels[h][shown]) if h in self.config.shown_only else (x, labels[h])
            drop = [F[f] for f in self.config.exclude.get(h, ())]
            if drop:
                xh = xh.copy()
                xh[:, drop] = 0.0  # no variance: the head gives it its prior, or nothing
            heads[h] = fit_head(xh, yh, self.priors.get(h, {}))
            # monotone in the viewer's own interest: liking more of a topic
            # never lowers its videos' engagement (raises their skips); a fit
            # that says otherwise (small or periodic data) goes without it
            sign = -1.0 if h == "skip" else 1.0
            if sign * heads[h].coef[F["topic_share"]] < 0:
                xh = xh.copy()
                xh[:, F["topic_share"]] = 0.0
                heads[h] = fit_head(xh, yh, self.priors.get(h, {}))
        return heads

    # -- the serving artifact ----------------------------------------------------

    def artifact(self) -> bytes:
        """What a node needs to serve with this model, as bytes (numpy's npz,
        no pickles): the item model, embeddings, counts, heads and the model
        card. No user and no engagement row: a node that loads it serves
        feeds but cannot forget users (the trainer downdates and publishes)."""
        meta = {
            "version": self.version,
            "config": self.config.__dict__,
            "priors": self.priors,
            "items": self.items,
            "heads": {h: [float(self.heads[h].intercept), self.heads[h].examples,
                          self.heads[h].positives] for h in HEADS},
            "card": self.describe(),
            "blend": self.blend,
            "jurisdictions": self.data.records_by_region(),
        }  # fmt: skip
        arrays = {"B": self.B, "V": self.V, "pos": self.pos, "neg": self.neg}
        arrays |= {f"coef_{h}": self.heads[h].coef for h in HEADS}
        buf = io.BytesIO()
        meta_bytes = np.frombuffer(json.dumps(meta, default=list).encode(), np.uint8)
        np.savez(buf, meta=meta_bytes, **arrays)
        return buf.getvalue()

    @classmethod
    def from_artifact(cls, blob: bytes) -> Model:
        """A serving model from :meth:`artifact`; its content must hash to the
        version it names (ValueError otherwise: altered where it was kept)."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            arrays = {k: z[k] for k in z.files if k != "meta"}
        config = ModelConfig.from_dict(meta["config"])
        items = list(meta["items"])
        none = (np.zeros(0, t) for t in (np.int32, np.int32, np.int8, np.int64))
        empty = TrainingSet([], items, *none)
        m = cls(config, meta["priors"], items, empty)
        m.B, m.V = arrays["B"], np.ascontiguousarray(arrays["V"])
        m.pos, m.neg = arrays["pos"], arrays["neg"]
        m.share_prior = _positive_rate(m.pos, m.neg)
        if any(len(arrays[f"coef_{h}"]) != len(FEATURES) for h in HEADS):
            raise ValueError(
                "the model artifact was trained on other features than this engine's: retrain"
            )
        m.heads = {
            h: Head(arrays[f"coef_{h}"], float(meta["heads"][h][0]), *meta["heads"][h][1:])
            for h in HEADS
        }
        m.head_matrix = (
            np.stack([m.heads[h].coef for h in HEADS], 1),
            np.array([m.heads[h].intercept for h in HEADS]),
        )
        m.index = faiss.IndexFlatIP(m.V.shape[1])
        m.index.add(m.V)
        m.blend = {f: float(w) for f, w in meta.get("blend", {}).items()}
        m.version = m._digest()
        if m.version != meta["version"]:
            raise ValueError(f"the model artifact does not hash to its version {meta['version']}")
        m.card = meta["card"]
        m.jurisdictions = meta["jurisdictions"]
        return m

    # -- identity -----------------------------------------------------------------

    @property
    def uses_topics(self) -> bool:
        """Whether a head weighs the topic share (none does on an untagged
        catalogue: serving need not count the viewer's topics)."""
        return bool(self.head_matrix[0][F["topic_share"]].any())

    def tuned(self, record: dict[str, Any]) -> None:
        """Set what was chosen on held-out data (``record["chosen"]``: feature ->
        weight added to the score) and the record of the choice; a new version."""
        if bad := set(record.get("chosen", {})) - set(FEATURES):
            raise ValueError(f"a blend of unknown features {sorted(bad)}")
        self.blend = {f: float(w) for f, w in record.get("chosen", {}).items()}
        self.tuning = record
        self.version = self._digest()

    @property
    def blend_vector(self) -> np.ndarray:
        out = np.zeros(len(FEATURES))
        for f, w in self.blend.items():
            out[F[f]] = w
        return out

    def _digest(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.config.__dict__, sort_keys=True, default=list).encode())
        h.update(json.dumps(self.priors, sort_keys=True).encode())
        h.update("\n".join(self.items).encode())
        for a in (self.B, self.V, self.pos, self.neg):
            h.update(np.ascontiguousarray(a).tobytes())
        for name in HEADS:
            hd = self.heads[name]
            h.update(hd.coef.tobytes())
            h.update(np.float64(hd.intercept).tobytes())
        if self.blend:  # (a model without one keeps the version it had)
            h.update(json.dumps(self.blend, sort_keys=True).encode())
        return "sha256:" + h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """The model card: configuration, size, heads (published with releases)."""
        card = getattr(self, "card", None)
        if card is not None:  # a serving model, loaded: the card it was published with
            return card
        return {
            "version": self.version,
            "config": self.config.__dict__,
            "items": len(self.items),
            "users": len(self.data.users) - len(self.gone),
            "training_rows": len(self.data.u),
            "training_data": self.data.digest(),
            "forgotten_users": len(self.gone),
            "heads": {h: self.heads[h].to_dict() for h in HEADS},
            "blend": self.blend,
            "tuning": self.tuning,
            "derived": list(self.data.derived),
        }
