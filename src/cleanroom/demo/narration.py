"""The demo's narration: its console, its constants and the step titles."""

from __future__ import annotations

from rich.console import Console

console = Console()
ORIGIN = "cleanroom.example/log"
DATASET = "kuairec-small"
EVENT_BATCH = 5000
PUPPET_PAGES = 12
FLAGGED = "t:12"  # the audit's flagged topic (derived topics carry no meaning)


def step(title: str) -> None:
    """A step's heading: on a rule when it fits, else whole above one (never cut)."""
    if len(title) + 6 <= console.width:
        console.rule(f"[bold cyan]{title}")
    else:
        console.rule()
        console.print(f"[bold cyan]{title}")
