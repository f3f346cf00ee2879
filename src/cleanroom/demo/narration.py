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
    console.rule(f"[bold cyan]{title}")
