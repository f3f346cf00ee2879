"""Errors of the storage layer, on the project's base (``cleanroom.errors``,
re-exported here for the modules that import it from storage)."""

from __future__ import annotations

from cleanroom.errors import CleanroomError

__all__ = ["CleanroomError", "StorageError"]


class StorageError(CleanroomError):
    """The database URL is unusable or the server cannot be reached."""

    status = 503
    title = "Storage unavailable"
