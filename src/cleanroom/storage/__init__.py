"""Storage: one database from one URL (SQLite or PostgreSQL) and schema migrations."""

from cleanroom.storage.engine import Database, normalise_url, sqlite_url
from cleanroom.storage.errors import CleanroomError, StorageError
from cleanroom.storage.migrations import Migration, applied_versions, migrate

__all__ = [
    "CleanroomError",
    "Database",
    "Migration",
    "StorageError",
    "applied_versions",
    "migrate",
    "normalise_url",
    "sqlite_url",
]
