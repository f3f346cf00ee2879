"""The API's routes, one module-level router per area: the log and ledger,
the platform's data and people, the For You feed, releases, screening,
boosts, principals' tokens."""

from cleanroom.api.routes import boost, foryou, log, platform, principals, release, screen

__all__ = ["boost", "foryou", "log", "platform", "principals", "release", "screen"]
