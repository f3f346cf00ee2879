"""Start-up the API, the CLI, the demo and the benchmarks share: a new data
directory with its log key, and a cast of example principals with tokens."""

from __future__ import annotations

from pathlib import Path

from cleanroom.ledger.note import Signer, generate_signer
from cleanroom.ledger.store import LedgerStore
from cleanroom.room.config import Config, DataDir

EXAMPLE_PRINCIPALS = [  # name, kind, org, role, clearance, subject
    ("platform-app", "service", "platform", "ingest", 1, None),
    ("alice-support", "person", "operator", "support", 1, None),
    ("pete-parent", "person", "parent", "engineer", 9, None),
    ("olga-oversight", "person", "oversight", "regulator", 5, None),
    ("rita-research", "person", "researcher", "scientist", 1, None),
    ("viewer-14", "user", "users", "user", 0, "u14"),
    ("viewer-15", "user", "users", "user", 0, "u15"),
    ("viewer-16", "user", "users", "user", 0, "u16"),
    ("oscar-ops", "person", "operator", "engineer", 1, None),
]


def init_data_dir(path: Path, origin: str) -> tuple[DataDir, Signer]:
    """A new clean room's data directory (SQLite, local keys) and its log key."""
    dd = DataDir(path)
    dd.save(Config(origin=origin))
    signer = generate_signer(origin)
    dd.write_key("log", signer)
    db = dd.database()
    LedgerStore(db, origin, signer).init()
    db.dispose()
    return dd, signer


def register_principals(dd: DataDir) -> dict[str, tuple[str, str]]:
    """Register the demo's principals; returns name -> (token, description)."""
    from cleanroom.gate import Principal
    from cleanroom.room import CleanRoom
    from cleanroom.room.bootstrap import add_oversight_principal

    out = {}
    with CleanRoom.open(dd, background=False) as room:
        for name, kind, org, role, clearance, subject in EXAMPLE_PRINCIPALS:
            p = Principal(name, kind, org, role, "US", clearance, subject)
            if org == "oversight":  # the demo plays the oversight body, with its root key
                add_oversight_principal(room, dd, p)
            else:
                room.principals.add(p)
            out[name] = (room.principals.issue_token(name), f"{org}/{role}")
        room.log.integrate()
    return out
