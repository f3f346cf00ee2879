"""The oversight body's tools: the monitor that verifies the ledger and holds
the clean room to its rules. Imports nothing of the clean room but
``cleanroom.ledger`` (and HTTP): it runs on the oversight body's own machine.

The names below load on first use, so the ``cleanroom`` command starts
without loading the monitor."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanroom.oversight.alerts import KINDS, Alert, AlertStore
    from cleanroom.oversight.rules import RuleEngine
    from cleanroom.oversight.watch import Watcher, WatchReport

_WHERE = {
    "KINDS": "alerts", "Alert": "alerts", "AlertStore": "alerts", "RuleEngine": "rules",
    "WatchReport": "watch", "Watcher": "watch",
}  # fmt: skip
__all__ = ["KINDS", "Alert", "AlertStore", "RuleEngine", "WatchReport", "Watcher"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
