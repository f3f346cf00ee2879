"""The project's error base, importing nothing, so every part (the standalone
ledger and the oversight body's tools included) shares it.

Every error names what went wrong (``message``) and, where it helps, what to do
(``hint``); ``status`` and ``title`` are what the API puts in its RFC 9457
problem+json, and the CLI prints ``str(error)`` on one line with exit code 2.
Parts raise specific subclasses.
"""

from __future__ import annotations


class CleanroomError(Exception):
    """An error the user can act on: a one-line message, an optional hint, and the HTTP status
    and title its problem+json carries."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(CleanroomError):
    """The data directory or its configuration is missing or invalid."""

    status = 500
    title = "Configuration error"


__all__ = ["CleanroomError", "ConfigError"]
