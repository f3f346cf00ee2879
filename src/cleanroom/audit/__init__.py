"""Algorithm audits: metrics of what feeds showed (sock-puppet audits,
exposure reports), over shown items only."""

from cleanroom.audit.metrics import (
    Shown,
    entropy,
    exploit_fraction,
    first_exposure,
    gini,
    top_share,
    topic_share_curve,
)

__all__ = [
    "Shown",
    "entropy",
    "exploit_fraction",
    "first_exposure",
    "gini",
    "top_share",
    "topic_share_curve",
]
