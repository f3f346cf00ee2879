"""The For You engine: retrieval from several sources, a learned ranker with
published weights, re-ranking rules, explanations, a non-personalised mode,
online learning, exact deletion and replayable feeds."""

from cleanroom.foryou.data import Item, TrainingSet
from cleanroom.foryou.engine import (
    CursorExpired,
    Engine,
    FeedError,
    FeedRecord,
    Observed,
    ReplayError,
    ServedFeed,
)
from cleanroom.foryou.feed import MODES, FeedItem
from cleanroom.foryou.model import FEATURES, Model, ModelConfig
from cleanroom.foryou.pool import Boost, Pool
from cleanroom.foryou.ranker import RankingConfig

__all__ = [
    "FEATURES",
    "MODES",
    "Boost",
    "CursorExpired",
    "Engine",
    "FeedError",
    "FeedItem",
    "FeedRecord",
    "Item",
    "Model",
    "ModelConfig",
    "Observed",
    "Pool",
    "RankingConfig",
    "ReplayError",
    "ServedFeed",
    "TrainingSet",
]
