"""The project's error base, kept in the lowest layer so every part (the
standalone ledger included) can share it.

Every error names what went wrong (``message``) and, where it helps, what to do
(``hint``); ``status`` and ``title`` are what the API puts in its RFC 9457
problem+json, and the CLI prints ``str(error)`` on one line with exit code 2.
"""

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


class StorageError(CleanroomError):
    """The database URL is unusable or the server cannot be reached."""

    status = 503
    title = "Storage unavailable"
