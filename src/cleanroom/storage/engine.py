"""One database from one URL: SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` so an acknowledged commit
survives a crash of the process or the machine. Write transactions on SQLite
start with ``BEGIN IMMEDIATE`` so that a read-then-write transaction can never
fail half-way on a lock upgrade; PostgreSQL uses ordinary transactions with row
locks where a part needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from cleanroom.storage.errors import StorageError


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Database:
    """An engine plus the two kinds of transaction the parts use."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise StorageError(f"database URL {url!r} is not a valid URL") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(parsed.database)
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
            )
        else:
            raise StorageError(
                f"unsupported database {self.dialect!r}",
                hint="use sqlite:///path or postgresql+psycopg://user@host/db",
            )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _sqlite_engine(self, database: str | None) -> Engine:
        if not database or database == ":memory:":
            raise StorageError("SQLite needs a file path: durability needs a real file")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A small pool: opening a connection runs the PRAGMAs below, which costs
        # more than most queries; each checkout still has its own transaction.
        engine = create_engine(
            self.url,
            pool_size=8,
            max_overflow=16,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "BEGIN")
            conn.exec_driver_sql(mode)

        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading (a consistent snapshot)."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read_latest(self) -> Iterator[Connection]:
        """Reads without a snapshot (autocommit on PostgreSQL: no BEGIN/COMMIT round
        trips). Only for data that is append-only, where each statement seeing
        the latest committed state is enough."""
        if self.is_sqlite:
            with self.read() as conn:
                yield conn
            return
        with self._connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on normal exit, rolled back on error."""
        with self._connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise StorageError(
                f"cannot connect to the database: {str(exc.orig).strip().splitlines()[0]}",
                hint="check the database URL and that the server is running",
            ) from exc
        with conn:
            yield conn

    def upsert(
        self, conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]]
    ) -> None:
        """Insert ``rows``, replacing the other columns of rows whose ``keys`` exist."""
        if not rows:
            return
        ins = (sqlite.insert if self.is_sqlite else postgresql.insert)(table)
        update = {c: ins.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=update), rows)

    def check(self) -> None:
        """Raise StorageError unless the database answers a query."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
