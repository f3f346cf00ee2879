"""Models the nodes share, and the one trainer among them.

- ``ModelStore``: serving artifacts stored by version (the digest is the
  name; a node verifies what it loads against it), the live version every
  node follows, and the requests the trainer takes up (a retraining asked of
  any node; users a node deleted, whom the trainer forgets from the model).
- ``Lease``: one holder at a time, for a while (the trainer; renewed while it
  lives; taken over when it expires). Fenced by the database: acquiring and
  renewing are single conditional statements.
"""

from __future__ import annotations

import time

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cleanroom.storage import Database, Migration, migrate

_meta = MetaData()
models_t = Table(
    "foryou_models",
    _meta,
    Column("version", String(80), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
)
live_t = Table(  # one row per name: "model" (the live version), "retrain" (asked at)
    "foryou_live",
    _meta,
    Column("name", String(32), primary_key=True),
    Column("value", String(80), nullable=False),
    Column("set_ms", BigInteger, nullable=False),
)
forget_t = Table(  # users deleted on some node, for the trainer to forget (then gone)
    "foryou_forget",
    _meta,
    Column("user_id", String(128), primary_key=True),
    Column("requested_ms", BigInteger, nullable=False),
)
leases_t = Table(
    "cluster_leases",
    _meta,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)


def _create(conn: Connection) -> None:
    _meta.create_all(conn)


MIGRATIONS = [Migration("models", 1, "model artifacts, the live model, leases", _create)]
KEEP_MODELS = 4  # artifacts kept: the live one and a few before it (replays of recent feeds)


def _now() -> int:
    return int(time.time() * 1000)


class ModelStore:
    """Model artifacts by version, the live version, the trainer's requests."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)

    def put(self, version: str, body: bytes) -> None:
        with self.db.write() as conn:
            if conn.execute(
                select(models_t.c.version).where(models_t.c.version == version)
            ).first():
                return
            conn.execute(insert(models_t).values(version=version, created_ms=_now(), body=body))

    def get(self, version: str) -> bytes | None:
        with self.db.read() as conn:
            return conn.execute(
                select(models_t.c.body).where(models_t.c.version == version)
            ).scalar()

    def versions(self) -> list[str]:
        with self.db.read() as conn:
            return list(
                conn.execute(select(models_t.c.version).order_by(models_t.c.created_ms)).scalars()
            )

    def publish(self, version: str) -> None:
        """Make ``version`` the one every node serves with (and keep a few before it)."""
        self._set("model", version)
        with self.db.write() as conn:
            old = list(
                conn.execute(
                    select(models_t.c.version)
                    .order_by(models_t.c.created_ms.desc())
                    .offset(KEEP_MODELS)
                ).scalars()
            )
            if old:
                conn.execute(delete(models_t).where(models_t.c.version.in_(old)))

    def live(self) -> str | None:
        return self._get("model")

    def request_retrain(self) -> None:
        self._set("retrain", str(_now()))

    def retrain_requested(self) -> int:
        """When a retraining was last asked for (0: never)."""
        return int(self._get("retrain") or 0)

    def request_forget(self, user: str) -> None:
        with self.db.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(forget_t).values(user_id=user, requested_ms=_now()))
            except IntegrityError:
                pass  # asked already

    def forget_requests(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(select(forget_t.c.user_id)).scalars())

    def forgotten(self, users: list[str]) -> None:
        with self.db.write() as conn:
            conn.execute(delete(forget_t).where(forget_t.c.user_id.in_(users)))

    def _set(self, name: str, value: str) -> None:
        with self.db.write() as conn:
            self.db.upsert(
                conn, live_t, ["name"], [{"name": name, "value": value, "set_ms": _now()}]
            )

    def _get(self, name: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(live_t.c.value).where(live_t.c.name == name)).scalar()


class Lease:
    """A named lease in the database: one holder at a time until it expires."""

    def __init__(self, db: Database, name: str, holder: str, ttl_ms: int = 15_000) -> None:
        self.db, self.name, self.holder, self.ttl_ms = db, name, holder, ttl_ms
        migrate(db, MIGRATIONS)

    def acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew it if held: whether held now."""
        now = _now()
        with self.db.write() as conn:
            taken = conn.execute(
                update(leases_t)
                .where(
                    leases_t.c.name == self.name,
                    or_(leases_t.c.holder == self.holder, leases_t.c.expires_ms < now),
                )
                .values(holder=self.holder, expires_ms=now + self.ttl_ms)
            ).rowcount
            if taken:
                return True
            if conn.execute(select(leases_t.c.name).where(leases_t.c.name == self.name)).first():
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(leases_t).values(
                            name=self.name, holder=self.holder, expires_ms=now + self.ttl_ms
                        )
                    )
            except IntegrityError:
                return False  # another holder inserted it first
            return True

    def holder_now(self) -> str | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(leases_t.c.holder, leases_t.c.expires_ms).where(leases_t.c.name == self.name)
            ).first()
        return row.holder if row is not None and row.expires_ms >= _now() else None

    def release(self) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(leases_t)
                .where(leases_t.c.name == self.name, leases_t.c.holder == self.holder)
                .values(expires_ms=0)
            )
