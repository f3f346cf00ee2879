"""Project-wide error base. Parts raise specific subclasses carrying what went
wrong and what to do; the API maps ``status`` to problem+json, the CLI prints
one line and exits with code 2."""

from __future__ import annotations


class CleanroomError(Exception):
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
