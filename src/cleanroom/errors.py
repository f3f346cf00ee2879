"""Project-wide errors. The base class lives in ``cleanroom.storage.errors`` (the
lowest layer) so the standalone ledger shares it; parts raise specific
subclasses, the API maps ``status`` to problem+json, the CLI prints one line and
exits with code 2."""

from __future__ import annotations

from cleanroom.storage.errors import CleanroomError


class ConfigError(CleanroomError):
    """The data directory or its configuration is missing or invalid."""

    status = 500
    title = "Configuration error"


__all__ = ["CleanroomError", "ConfigError"]
