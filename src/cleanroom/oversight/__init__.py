"""The oversight body's tools: the monitor that verifies the ledger and holds
the clean room to its rules. Imports nothing of the clean room but
``cleanroom.ledger`` (and HTTP): it runs on the oversight body's own machine."""

from cleanroom.oversight.alerts import KINDS, Alert, AlertStore
from cleanroom.oversight.rules import RuleEngine
from cleanroom.oversight.watch import Watcher, WatchReport

__all__ = ["KINDS", "Alert", "AlertStore", "RuleEngine", "WatchReport", "Watcher"]
