"""The HTTP API (FastAPI)."""

from cleanroom.api.app import create_app

__all__ = ["create_app"]
