"""The ledger's tables and migrations (it owns them; nobody else touches them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from cleanroom.storage import Migration

metadata = MetaData()

# Sequencing counter: the next index to hand out (one row, id = 1).
state = Table(
    "ledger_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("next_index", BigInteger, nullable=False),
)

# Sequenced entries: canonical bodies and their leaf hashes. Append-only.
entries = Table(
    "ledger_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
)

# Hash tiles (C2SP tlog-tiles); a right-edge tile grows until it is full.
tiles = Table(
    "ledger_tiles",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# Which checkpoint is current (one row, id = 1): the compare-and-swap target.
# Its signed note is the row of ``checkpoints`` at the same size.
checkpoint = Table(
    "ledger_checkpoint",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every checkpoint ever signed, with the cosignatures gathered for it.
checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

# The last size each configured witness cosigned (to send the right proof).
witness_progress = Table(
    "ledger_witness_progress",
    metadata,
    Column("witness", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
)

# Witness side: the logs a witness trusts, its latest cosigned checkpoint per log,
# and requests that were validly signed but inconsistent (evidence).
witness_state = Table(
    "witness_state",
    metadata,
    Column("origin", String(400), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
witness_logs = Table(
    "witness_logs",
    metadata,
    Column("origin", String(400), primary_key=True),
    Column("vkeys", Text, nullable=False),
)
witness_evidence = Table(
    "witness_evidence",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("origin", String(400), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# The search index (ledger/search.py): one row per entry, one per subject it lists.
entry_index = Table(
    "ledger_entry_index",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(200), nullable=False),
    Column("time_ms", BigInteger),
    Column("principal", String(200)),
    Index("ledger_entry_index_type", "type", "idx"),
    Index("ledger_entry_index_time", "time_ms"),
    Index("ledger_entry_index_principal", "principal", "idx"),
)
entry_subjects = Table(
    "ledger_entry_subjects",
    metadata,
    Column("commitment", String(100), primary_key=True),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
)
# How far the index goes: entries below ``upto`` are indexed (one row, id = 1;
# no row: nothing is).
index_state = Table(
    "ledger_index_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("upto", BigInteger, nullable=False),
)

_V1 = [state, entries, tiles, checkpoint, checkpoints, witness_progress]
_W1 = [witness_state, witness_logs, witness_evidence]


def _create(tables: list[Table]):
    def apply(conn: Connection) -> None:
        metadata.create_all(conn, tables=tables)

    return apply


MIGRATIONS = [
    Migration("ledger", 1, "entries, tiles, checkpoints", _create(_V1)),
    Migration(
        "ledger",
        2,
        "the search index by type, time, principal, subject",
        _create([entry_index, entry_subjects]),
    ),
    # how far the index goes (filled by the searches, from the log)
    Migration("ledger", 3, "the search index's mark", _create([index_state])),
    Migration("witness", 1, "witness state, trusted logs, evidence", _create(_W1)),
]
