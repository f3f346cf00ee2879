"""The assembly: one clean room wired from its parts (``assembly``), the
recommender inside it, the deploy check and first releases (``live``,
``bootstrap``, ``manifests``, ``provenance``, ``review``, ``infra``), the audit
accounts, the data directory's configuration (``config``), the bundled
datasets and the start-up the API, the CLI and the demo share (``setup``).

``CleanRoom`` and ``issue_token`` load on first use: reading a data
directory's configuration does not load the gate, the vault and the log."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanroom.room.assembly import CleanRoom, issue_token

__all__ = ["CleanRoom", "issue_token"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.assembly"), name)
