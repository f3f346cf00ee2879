"""The assembly: one clean room wired from its parts (``assembly``), the
recommender inside it, the deploy check and first releases (``live``,
``bootstrap``, ``manifests``, ``provenance``, ``review``, ``infra``), the
data directory's configuration (``config``), the bundled datasets and the
start-up the API, the CLI and the demo share (``setup``)."""

from cleanroom.room.assembly import CleanRoom, issue_token

__all__ = ["CleanRoom", "issue_token"]
