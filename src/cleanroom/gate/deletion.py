"""Deletion: crypto-shredding through the gate, receipts on the ledger, and
orders (one user, or every user of a jurisdiction) that run in batches and
resume after an interruption.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

from cleanroom.gate.gate import Gate
from cleanroom.gate.principals import Principal
from cleanroom.ledger.entries import commitment
from cleanroom.storage import Database, Migration, migrate
from cleanroom.storage.errors import CleanroomError
from cleanroom.vault.model import check_id, check_jurisdiction
from cleanroom.vault.store import Erasure, UnknownRecord

log = logging.getLogger(__name__)
BATCH = 200
DAY_MS = 86_400_000


class OrderError(CleanroomError):
    """A deletion order that cannot be issued as given."""

    status = 422
    title = "Invalid deletion order"


@dataclass(frozen=True)
class Receipt:
    """A deletion's receipt: its ledger index and body."""

    entry: int  # ledger index of the receipt
    body: dict[str, Any]


def _item(uid: str, e: Erasure) -> dict[str, Any]:
    return {
        "subject": commitment(e.salt, uid) if e.salt else None,
        "key_id": e.key_id,
        "key_destroyed": e.key_destroyed,
        "events": e.events,
        "profile": e.profile,
    }


def _tally(order: dict[str, Any], items: list[dict[str, Any]]) -> None:
    order["deleted_users"] += sum(i["profile"] for i in items)
    order["deleted_events"] += sum(i["events"] for i in items)


# Deletion orders and their progress, so a jurisdiction-wide order resumes where
# it stopped. The gate issues and runs them; the table is the gate's (it was the
# vault's, ``vault_deletion_orders``, until the orders moved here: migration 1
# carries its rows over).
_meta = MetaData()
orders_t = Table(
    "gate_deletion_orders",
    _meta,
    Column("id", String(64), primary_key=True),
    Column("scope", String(16), nullable=False),  # "user" or "jurisdiction"
    Column("target", Text, nullable=False),  # a commitment or a jurisdiction code
    Column("issued_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending, running, done
    Column("deleted_users", BigInteger, nullable=False),
    Column("deleted_events", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
LEGACY_TABLE = "vault_deletion_orders"


def _create(conn: Connection) -> None:
    _meta.create_all(conn)
    if inspect(conn).has_table(LEGACY_TABLE):  # a clean room made before the move
        legacy = Table(LEGACY_TABLE, MetaData(), autoload_with=conn)
        rows = [dict(r._mapping) for r in conn.execute(select(legacy))]
        if rows:
            conn.execute(orders_t.insert(), rows)
        legacy.drop(conn)


MIGRATIONS = [Migration("deletion", 1, "deletion orders, the gate's own table", _create)]


class OrderBook:
    """The deletion orders and their progress."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, MIGRATIONS)

    def save(self, order: dict[str, Any]) -> None:
        with self.db.write() as conn:
            self.db.upsert(conn, orders_t, ["id"], [order])

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(orders_t).where(orders_t.c.id == order_id)).first()
        return None if row is None else dict(row._mapping)

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        q = select(orders_t).order_by(orders_t.c.created_at)
        if status is not None:
            q = q.where(orders_t.c.status == status)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


class Deletions:
    """Deleting users through the gate, one at a time or by order, each with
    its receipt on the ledger."""

    def __init__(self, gate: Gate, db: Database) -> None:
        self.gate = gate
        self.vault = gate.vault
        self.log = gate.log
        self.orders = OrderBook(db)

    def delete_user(
        self,
        principal: Principal,
        user_id: str,
        *,
        purpose: str = "user_request",
        order_id: str | None = None,
    ) -> Receipt:
        """Delete one user through the gate and write the receipt."""
        grant = self.gate.require(
            principal, "delete", "UserData", purpose=purpose, subjects=[user_id]
        )
        erasure = self.vault.delete_user(grant, user_id)
        return self._receipt(grant.decision, order_id, [_item(user_id, erasure)])

    def _receipt(
        self, decision: int | None, order_id: str | None, items: list[dict[str, Any]]
    ) -> Receipt:
        """Write the ledger's receipt for what was erased."""
        body = {
            "type": "deletion",
            "v": 1,
            "time_ms": int(time.time() * 1000),
            "decision": decision,
            "order": order_id,
            "deleted": items,
        }
        return Receipt(self.log.append(body), body)

    def order(
        self,
        issuer: Principal,
        *,
        scope: str,
        target: str,
        reason: str,
        deadline_days: int = 30,
    ) -> dict[str, Any]:
        """Record a deletion order (the oversight body's), through the gate."""
        if scope == "user":
            check_id(target, "user id")
        elif scope == "jurisdiction":
            check_jurisdiction(target)
            if target != self.gate.jurisdiction:
                raise OrderError(
                    f"this clean room holds data of {self.gate.jurisdiction}, not {target}"
                )
        else:
            raise OrderError("scope must be 'user' or 'jurisdiction'")
        if not reason.strip() or len(reason) > 2000:
            raise OrderError("an order needs a reason (at most 2000 characters)")
        if not 0 <= deadline_days <= 365:
            raise OrderError("deadline_days must be between 0 and 365")
        grant = self.gate.require(issuer, "write", "DeletionOrders", purpose="legal")
        shown: str | list[str] = target  # a jurisdiction is named; users by commitment
        if scope == "user":
            subject = self.vault.subjects([target])[target]
            if not subject.exists:
                raise UnknownRecord(f"no user {target!r}")
            shown = [commitment(subject.salt, target)]
        now = datetime.now(UTC)
        order = {
            "id": "do-" + secrets.token_hex(8),
            "scope": scope,
            "target": target,
            "issued_by": issuer.name,
            "reason": reason,
            "deadline_ms": int(now.timestamp() * 1000) + deadline_days * DAY_MS,
            "status": "pending",
            "deleted_users": 0,
            "deleted_events": 0,
            "created_at": now,
            "finished_at": None,
        }
        entry = self.log.append(
            {
                "type": "deletion.order",
                "v": 1,
                "time_ms": int(now.timestamp() * 1000),
                "order": order["id"],
                "decision": grant.decision,
                "issued_by": issuer.name,
                "scope": scope,
                "target": shown,
                "deadline_ms": order["deadline_ms"],
            }
        )
        self.orders.save(order)
        return {**public_order(order), "entry": entry}

    def run(
        self,
        executor: Principal,
        order_id: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Execute an order in batches (one receipt per batch); safe to re-run
        after an interruption: it continues with the users still stored."""
        order = self.orders.get(order_id)
        if order is None:
            raise UnknownRecord(f"no deletion order {order_id!r}")
        if order["status"] == "done":
            return public_order(order)
        order["status"] = "running"
        self.orders.save(order)
        if order["scope"] == "user":
            try:
                r = self.delete_user(
                    executor, order["target"], purpose="deletion_order", order_id=order_id
                )
                _tally(order, r.body["deleted"])
            except UnknownRecord:
                pass  # already gone (an earlier run finished the work)
        else:
            grant = self.gate.require(
                executor, "delete", "UserData", purpose="deletion_order", all_subjects=True
            )
            total = self.vault.counts()["users"] + order["deleted_users"]
            while batch := self.vault.user_ids(grant, limit=BATCH):
                items = [_item(uid, self.vault.delete_user(grant, uid)) for uid in batch]
                self._receipt(grant.decision, order_id, items)
                _tally(order, items)
                self.orders.save(order)
                if progress:
                    progress(order["deleted_users"], total)
        order["status"] = "done"
        order["finished_at"] = datetime.now(UTC)
        # the order's completion on the record: what the oversight body checks
        # against the order's deadline
        self.log.append(
            {
                "type": "deletion.done",
                "v": 1,
                "time_ms": int(order["finished_at"].timestamp() * 1000),
                "order": order_id,
                "deleted_users": order["deleted_users"],
                "deleted_events": order["deleted_events"],
            }
        )
        if order["scope"] == "user":
            order["target"] = "(deleted user)"
        self.orders.save(order)
        return public_order(order)


def public_order(order: dict[str, Any]) -> dict[str, Any]:
    """An order as the API shows it (a user target is not shown)."""
    out = {k: v for k, v in order.items() if k != "target" or order["scope"] != "user"}
    for k in ("created_at", "finished_at"):
        if isinstance(out.get(k), datetime):
            out[k] = out[k].isoformat()
    return out


class OrderRunner:
    """Runs jurisdiction-wide orders in a background thread, one at a time;
    picks up orders left pending or running by an earlier process."""

    def __init__(self, deletions: Deletions, executor: Principal) -> None:
        self.deletions = deletions
        self.executor = executor
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="deletion-orders", daemon=True)
        self.last_error: str | None = None

    def start(self) -> OrderRunner:
        for o in self.deletions.orders.list():
            if o["status"] in ("pending", "running"):
                self._queue.put(o["id"])
        self._thread.start()
        return self

    def submit(self, order_id: str) -> None:
        self._queue.put(order_id)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def wait_idle(self) -> None:
        self._queue.join()

    def _loop(self) -> None:
        while True:
            order_id = self._queue.get()
            try:
                if order_id is None:
                    return
                self.deletions.run(self.executor, order_id)
            except Exception as exc:  # keep serving; the order stays resumable
                self.last_error = f"order {order_id}: {exc}"
                log.exception("deletion order %s failed", order_id)
            finally:
                self._queue.task_done()
