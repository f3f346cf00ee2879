"""The published ranking configuration and the scoring of candidates.

A candidate's score is ``Σ_h weight[h] · P_h(features)`` over the engagement
heads (``signals.HEADS``); ``ranking.json`` (shipped with the package and
published at ``GET /v1/feed/config``) holds the weights, the priors, the
exploration rate, the re-ranking rules and the model and retrieval sizes: anyone
can read what the feed optimises."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from cleanroom.foryou.data import json_digest
from cleanroom.foryou.model import BASELINE, FEATURES, Model, ModelConfig
from cleanroom.foryou.signals import HEADS
from cleanroom.storage.errors import CleanroomError


class ConfigError(CleanroomError):
    """A ranking configuration that does not parse or is out of range."""

    status = 422
    title = "Invalid ranking configuration"


@dataclass(frozen=True)
class RankingConfig:
    """The published ranking: feature weights, priors, exploration, re-ranking rules and
    boosts (its digest is what releases approve)."""

    weights: dict[str, float]
    priors: dict[str, dict[str, float]]
    exploration: float
    creator_gap: int
    topic_cap: float
    boost_label: str
    model: ModelConfig
    retrieval: dict[str, int]
    raw: dict[str, Any]
    # added to the score of every video of a creator: a boost written into the
    # configuration (so it is reviewed as part of a release and labelled in feeds)
    creator_boosts: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> RankingConfig:
        try:
            weights = {h: float(doc["weights"][h]) for h in HEADS}
            priors = {
                h: {f: float(c) for f, c in doc.get("priors", {}).get(h, {}).items()} for h in HEADS
            }
            for h, p in priors.items():
                if bad := set(p) - set(FEATURES):
                    raise ConfigError(f"priors of {h} name unknown features {sorted(bad)}")
            rerank = doc.get("rerank", {})
            cfg = cls(
                weights,
                priors,
                float(doc.get("exploration", 0.0)),
                int(rerank.get("creator_gap", 1)),
                float(rerank.get("topic_cap", 1.0)),
                str(rerank.get("boost_label", "Promoted")),
                ModelConfig.from_dict(doc.get("model", {})),
                {k: int(v) for k, v in doc.get("retrieval", {}).items()},
                doc,
                {str(c): float(f) for c, f in rerank.get("creator_boosts", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"ranking configuration: {e}") from None
        if not 0.0 <= cfg.exploration <= 1.0:
            raise ConfigError("exploration must be between 0 and 1")
        if not 0.0 < cfg.topic_cap <= 1.0:
            raise ConfigError("rerank.topic_cap must be in (0, 1]")
        return cfg

    @classmethod
    def shipped(cls) -> RankingConfig:
        text = (resources.files("cleanroom.foryou") / "ranking.json").read_text()
        return cls.parse(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        """The configuration in effect (what the digest covers)."""
        return {
            "weights": self.weights,
            "priors": self.priors,
            "exploration": self.exploration,
            "rerank": {
                "creator_gap": self.creator_gap,
                "topic_cap": self.topic_cap,
                "boost_label": self.boost_label,
                **({"creator_boosts": self.creator_boosts} if self.creator_boosts else {}),
            },
            "model": self.model.__dict__,
            "retrieval": self.retrieval,
        }

    def digest(self) -> str:
        """Digest of the configuration in effect (computed once per instance;
        a changed copy, e.g. ``dataclasses.replace``, gets its own)."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = json_digest(self.to_dict())
            object.__setattr__(self, "_digest", cached)
        return cached


def head_probabilities(model: Model, x: np.ndarray) -> np.ndarray:
    """P(head) for feature rows ``x`` (rows x features) -> rows x heads."""
    coef, intercept = model.head_matrix
    return 0.5 * (1.0 + np.tanh(0.5 * (x @ coef + intercept)))


def score(model: Model, x: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """The published weights on the heads' probabilities, plus the model's
    blend (features weighted as chosen on held-out data, see ``tuning``)."""
    w = np.array([weights[h] for h in HEADS])
    s = head_probabilities(model, x) @ w
    return s + x @ model.blend_vector if model.blend else s


def contributions(model: Model, x: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """For each row and feature: how much the score drops when that feature is
    taken away (set to its value with the source absent, ``BASELINE``). Exact,
    not a linearisation: every row is scored once per feature, in one batch."""
    rows, nf = x.shape
    base = score(model, x, weights)
    y = np.repeat(x[None], nf, axis=0)  # feature x rows x features
    y[np.arange(nf), :, np.arange(nf)] = np.asarray(BASELINE, np.float64)[:, None]
    out = (base[None, :] - score(model, y.reshape(nf * rows, nf), weights).reshape(nf, rows)).T
    out[x == np.asarray(BASELINE)] = 0.0  # a feature at its baseline contributes nothing
    return out
