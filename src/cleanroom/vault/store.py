"""The vault: protected records under per-user envelope encryption, at one site.

Every function that reads, writes, exports or deletes protected data takes a
:class:`~cleanroom.vault.grants.Grant` that only the gate can issue, and checks
it covers exactly that access. The few functions without a grant return no
personal data (counts; the jurisdiction and salted commitment the gate needs to
decide and record).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from cleanroom.storage import Database, migrate
from cleanroom.storage.errors import CleanroomError
from cleanroom.vault import schema as t
from cleanroom.vault.grants import Grant, GrantAuthority, GrantChecker
from cleanroom.vault.keys import NONCE, DecryptionError, aad, aad_prefix, seal, unseal
from cleanroom.vault.keystore import KeyStore, SubjectKey
from cleanroom.vault.model import (
    EVENT_KINDS,
    FIELD_CLASSES,
    Event,
    InvalidRecord,
    User,
    Video,
)
from cleanroom.vault.residency import ResidencyPolicy, Site

MAX_BATCH = 10_000
KEPT_KEYS = 100_000  # users whose key id is remembered for the records kept about them


class UnknownRecord(CleanroomError):
    """No record with that id."""

    status = 404
    title = "Not found"


class Conflict(CleanroomError):
    """A record that conflicts with one already stored."""

    status = 409
    title = "Conflict"


@dataclass(frozen=True)
class Subject:
    """What the gate needs about a data subject: no personal data."""

    exists: bool
    jurisdiction: str | None
    salt: bytes  # the gate records commitment(salt, id), never the id


@dataclass(frozen=True)
class Stored:
    """What one batch of events stored: how many, and each user's first and
    last sequence number in it."""

    count: int
    ranges: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Erasure:
    """What one deletion removed (the gate turns it into a ledger receipt)."""

    salt: bytes | None  # None if the key was already gone
    key_id: str
    events: int
    profile: int
    key_destroyed: bool


SEP = b"\x1f"
_PAYLOAD_V1 = b"\x01"


def encode_event_payload(video: str, kind: str, watch_ms: int, context: dict[str, Any]) -> bytes:
    """Plaintext of an event's ciphertext: a version byte, then video, kind and
    watch time separated by US (0x1f; ids cannot contain it) and the context as
    JSON — bulk reads split it without parsing JSON."""
    return SEP.join(
        (_PAYLOAD_V1 + video.encode(), kind.encode(), str(watch_ms).encode(), _dumps(context))
    )


def _dumps(v: Any) -> bytes:
    return orjson.dumps(v)  # compact UTF-8 JSON


def mask(field_name: str, value: Any) -> Any:
    """Masked form of a protected field (an obligation of exceptional access)."""
    if value is None:
        return None
    s = str(value)
    if field_name == "phone":
        digits = [c for c in s if c.isdigit()]
        return "•" * max(len(digits) - 2, 0) + "".join(digits[-2:])
    if field_name == "ip_address":
        if ":" in s:
            return ":".join(s.split(":")[:3]) + "::/48"
        parts = s.split(".")
        return ".".join(parts[:3]) + ".0/24" if len(parts) == 4 else "•"
    if field_name == "email":
        name, _, domain = s.partition("@")
        return (name[:1] + "•••@" + domain) if domain else "•••"
    if field_name == "precise_location" and isinstance(value, dict):
        return {k: round(float(v), 1) for k, v in value.items()}
    return "•••"


class Vault:
    """Protected users, videos and events at one site of one jurisdiction."""

    def __init__(
        self,
        db: Database,
        keys: KeyStore,
        site: Site,
        residency: ResidencyPolicy | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.site = site
        self.residency = residency or ResidencyPolicy(
            jurisdictions=(site.jurisdiction,), operators=(site.operator,)
        )
        self._grants = GrantChecker()
        self._pending: OrderedDict[str, SubjectKey] = OrderedDict()
        self._lock = threading.Lock()
        # user -> key id, for records kept about users (every feed served seals
        # one): a user's key id never changes, and a destroyed key is refused by
        # the key store (once its own cache lets go, as for every other read)
        self._kept_keys: OrderedDict[str, str] = OrderedDict()
        self.deletion_hooks: list[Callable[[str], None]] = []
        migrate(db, t.MIGRATIONS)

    # -- for the gate ------------------------------------------------------

    def authority(self) -> GrantAuthority:
        """The one grant authority (handed to the gate; a second call raises)."""
        return self._grants.authority()

    def on_delete(self, hook: Callable[[str], None]) -> None:
        """Register a hook called with a user id after that user's data is erased
        (the feed drops its state for the user)."""
        self.deletion_hooks.append(hook)

    def subjects(self, user_ids: list[str]) -> dict[str, Subject]:
        """Jurisdiction and commitment salt of each user. A user not stored yet
        gets the salt they will have once created."""
        rows = self._user_keys(user_ids)
        keys = self.keys.get({kid for _, kid in rows.values()})
        out = {}
        for uid in user_ids:
            if uid in rows and rows[uid][1] in keys:
                j, kid = rows[uid]
                out[uid] = Subject(True, j, keys[kid].salt)
            else:
                out[uid] = Subject(False, None, self._pending_key(uid).salt)
        return out

    def counts(self) -> dict[str, int]:
        """Aggregate counts (no personal data)."""
        with self.db.read() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in (("users", t.users), ("videos", t.videos), ("events", t.events))
            }

    # -- users ---------------------------------------------------------------

    def put_user(self, grant: Grant, user: User) -> bool:
        """Create or replace a user's record; returns True if it was created."""
        self._grants.check(grant, "write", "Profile", [user.id])
        self.residency.check_store(self.site, user.jurisdiction)
        existing = self._user_keys([user.id]).get(user.id)
        if existing is None:
            self._insert_users([user])
            return True
        if existing[0] != user.jurisdiction:
            raise Conflict("a user's home jurisdiction cannot change")
        row = self._user_row(user, self.keys.require(existing[1]), datetime.now(UTC))
        changed = {k: row[k] for k in ("profile", "public", "synthetic", "updated_at")}
        with self.db.write() as conn:
            conn.execute(update(t.users).where(t.users.c.id == user.id).values(**changed))
        return False

    def put_users(self, grant: Grant, users: list[User]) -> int:
        """Bulk-create users that do not exist yet (loading a dataset); returns
        how many were created."""
        self._grants.check(grant, "write", "Profile", [u.id for u in users])
        for u in users:
            self.residency.check_store(self.site, u.jurisdiction)
        if len({u.id for u in users}) != len(users):
            raise InvalidRecord("the batch names a user twice")
        existing = self._user_keys([u.id for u in users])
        new = [u for u in users if u.id not in existing]
        self._insert_users(new)
        return len(new)

    def _insert_users(self, users: list[User]) -> None:
        """Store new users: their keys first (a user row never lacks its key)."""
        if not users:
            return
        now = datetime.now(UTC)
        keys = [self._take_pending(u.id) for u in users]
        rows = [self._user_row(u, k, now) for u, k in zip(users, keys, strict=True)]
        self.keys.store_many(keys)
        with self.db.write() as conn:
            conn.execute(insert(t.users), rows)

    def _user_row(self, user: User, key: SubjectKey, now: datetime) -> dict[str, Any]:
        return {
            "id": user.id,
            "jurisdiction": user.jurisdiction,
            "site": self.site.name,
            "key_id": key.key_id,
            "profile": seal(key.aead, _dumps(user.profile), aad("vault_users", user.id, user.id)),
            "public": json.dumps(user.public, sort_keys=True),
            "synthetic": user.synthetic,
            "created_at": now,
            "updated_at": now,
        }

    def get_user(self, grant: Grant, user_id: str) -> dict[str, Any]:
        """The user's record, protected fields decrypted, masked per the grant's
        obligations (``mask:<field>``)."""
        self._grants.check(grant, "read", "Profile", [user_id])
        return self._user_doc(user_id, grant.obligations)

    def _user_doc(self, user_id: str, obligations: tuple[str, ...] = ()) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        if row is None:
            raise UnknownRecord(f"no user {user_id!r}")
        key = self.keys.require(row.key_id)
        profile = json.loads(unseal(key.aead, row.profile, aad("vault_users", user_id, user_id)))
        for ob in obligations:
            kind, _, name = ob.partition(":")
            if kind == "mask" and name in profile:
                profile[name] = mask(name, profile[name])
        return {
            "id": row.id,
            "jurisdiction": row.jurisdiction,
            "profile": profile,
            "public": json.loads(row.public),
            "synthetic": row.synthetic,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "masked": [o.partition(":")[2] for o in obligations if o.startswith("mask:")],
        }

    # -- videos ------------------------------------------------------------------

    def put_videos(self, grant: Grant, videos: list[Video]) -> int:
        """Insert or replace videos (atomic); returns how many were written."""
        self._grants.check(grant, "write", "Videos")
        if len(videos) > MAX_BATCH:
            raise InvalidRecord(f"at most {MAX_BATCH} videos per batch")
        if len({v.id for v in videos}) != len(videos):
            raise InvalidRecord("the batch names a video twice")
        rows = [
            {
                "id": v.id,
                "creator": v.creator,
                "topics": json.dumps(list(v.topics)),
                "language": v.language,
                "region": v.region,
                "public": v.public,
                "created_ms": v.created_ms,
            }
            for v in videos
        ]
        with self.db.write() as conn:
            self.db.upsert(conn, t.videos, ["id"], rows)
        return len(rows)

    def videos(self, grant: Grant, ids: list[str] | None = None) -> list[Video]:
        """The catalogue, or the videos of ``ids`` in it (a grant to read it,
        or the egress gate's to export it)."""
        self._grants.check(grant, ("read", "export"), "Videos")
        q = select(t.videos).order_by(t.videos.c.id)
        with self.db.read() as conn:
            if ids is None:
                rows = conn.execute(q).all()
            else:
                rows = []
                for i in range(0, len(ids), 900):
                    rows += conn.execute(q.where(t.videos.c.id.in_(ids[i : i + 900]))).all()
        return [
            Video(
                r.id,
                r.creator,
                tuple(json.loads(r.topics)),
                r.language,
                r.region,
                r.public,
                r.created_ms,
            )
            for r in rows
        ]

    # -- events --------------------------------------------------------------

    def add_events(self, grant: Grant, events: list[Event]) -> int:
        """Store a batch of events atomically: all or nothing; how many were
        stored (see :meth:`store_events`)."""
        return self.store_events(grant, events).count

    def store_events(
        self,
        grant: Grant,
        events: list[Event],
        *,
        also: Callable[[Any, dict[str, tuple[int, int]]], None] | None = None,
    ) -> Stored:
        """Store a batch of events atomically: all or nothing. Each user's
        events get the next sequence numbers of that user, in batch order.
        ``also(connection, ranges)`` runs in the same transaction (an outbox
        row that announces the batch commits with it, or neither does).

        Refuses (writing nothing) a batch that is too large, repeats an id,
        names an unknown user or video, or reuses an id already stored for
        another event. A batch stored before exactly as sent (a client's retry
        after a timeout) succeeds and stores nothing: ``count`` 0."""
        if len(events) > MAX_BATCH:
            raise InvalidRecord(f"at most {MAX_BATCH} events per batch, got {len(events)}")
        users = {e.user for e in events}
        self._grants.check(grant, "write", "Events", sorted(users))
        ids = [e.id for e in events]
        if len(set(ids)) != len(ids):
            raise InvalidRecord("the batch repeats an event id")
        owners = self._user_keys(sorted(users))
        if missing := users - owners.keys():
            raise InvalidRecord(
                f"{len(missing)} unknown user(s), e.g. {sorted(missing)[0]!r}",
                hint="create users with PUT /v1/users/{id} before sending their events",
            )
        self._check_videos({e.video for e in events})
        keys = self.keys.get({kid for _, kid in owners.values()})
        rows = []
        for e in events:
            key = keys.get(owners[e.user][1])
            if key is None:
                raise Conflict(f"user {e.user!r} is being deleted")
            payload = encode_event_payload(e.video, e.kind, e.watch_ms, e.context)
            rows.append(
                {
                    "id": e.id,
                    "user_id": e.user,
                    "ts_ms": e.ts_ms,
                    "payload": seal(key.aead, payload, aad("vault_events", e.id, e.user)),
                }
            )
        ranges: dict[str, tuple[int, int]] = {}
        try:
            with self.db.write() as conn:
                if rows:
                    ranges = self._sequence(conn, rows)
                    conn.execute(insert(t.events), rows)
                    if also is not None:
                        also(conn, ranges)
        except IntegrityError:
            # The primary key refused a duplicate; the transaction rolled back.
            if self._stored_identically(events, keys, owners):
                return Stored(0, {})  # the same batch again (a retry after a timeout)
            with self.db.read() as conn:
                taken = self._existing_events(conn, ids)
            raise Conflict(
                f"{len(taken)} event id(s) are already stored, e.g. {sorted(taken or ids)[0]!r}",
                hint="event ids are unique; nothing of this batch was stored",
            ) from None
        return Stored(len(rows), ranges)

    def _sequence(self, conn: Any, rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        """Number the rows per user after the user's last stored event (the
        users' rows are locked until the transaction ends: two batches of one
        user are numbered one after the other); each user's first and last."""
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["user_id"]] = counts.get(r["user_id"], 0) + 1
        ids = sorted(counts)
        last: dict[str, int] = {}
        for i in range(0, len(ids), 900):
            q = select(t.users.c.id, t.users.c.events).where(t.users.c.id.in_(ids[i : i + 900]))
            if not self.db.is_sqlite:  # SQLite's write transaction locks everything already
                q = q.order_by(t.users.c.id).with_for_update()
            last.update(conn.execute(q).all())
        if missing := counts.keys() - last.keys():
            raise Conflict(f"user {sorted(missing)[0]!r} is being deleted")
        ranges = {u: (last[u] + 1, last[u] + n) for u, n in counts.items()}
        for r in rows:
            last[r["user_id"]] += 1
            r["seq"] = last[r["user_id"]]
        conn.execute(
            update(t.users).where(t.users.c.id == bindparam("uid")).values(events=bindparam("n")),
            [{"uid": u, "n": ranges[u][1]} for u in ids],
        )
        return ranges

    def events_after(
        self, grant: Grant, user_id: str, after: int = 0
    ) -> tuple[int, list[tuple[int, str, str, int, int]]]:
        """A user's events after sequence number ``after``, in their order:
        ``(seq, video, kind, ts_ms, watch_ms)``; and the user's last sequence
        number (what a state folded from them is current through)."""
        found = self.events_after_many(grant, {user_id: after}).get(user_id)
        if found is None:
            raise UnknownRecord(f"no user {user_id!r}")
        return found

    def events_after_many(
        self, grant: Grant, afters: dict[str, int]
    ) -> dict[str, tuple[int, list[tuple[int, str, str, int, int]]]]:
        """:meth:`events_after` for several users in one read (users the vault
        does not hold are left out)."""
        users = sorted(afters)
        self._grants.check(grant, "read", "Events", users)
        with self.db.read() as conn:
            found = {
                uid: (kid, n)
                for uid, kid, n in conn.execute(
                    select(t.users.c.id, t.users.c.key_id, t.users.c.events).where(
                        t.users.c.id.in_(users)
                    )
                )
            }
            rows = conn.execute(
                select(t.events.c.id, t.events.c.user_id, t.events.c.seq, t.events.c.ts_ms,
                       t.events.c.payload)
                .where(or_(*[and_(t.events.c.user_id == u, t.events.c.seq > afters[u])
                             for u in found]))
                .order_by(t.events.c.user_id, t.events.c.seq)
            ).all() if found else []  # fmt: skip
        keys = self.keys.get({kid for kid, _ in found.values()})
        out: dict[str, tuple[int, list[tuple[int, str, str, int, int]]]] = {
            u: (n, []) for u, (kid, n) in found.items() if kid in keys
        }
        for eid, user, seq, ts, blob in rows:
            if user not in out:
                continue
            plain = unseal(keys[found[user][0]].aead, blob, aad("vault_events", eid, user))
            video, kind, watch, _ctx = plain[1:].split(SEP, 3)
            out[user][1].append((seq, video.decode(), kind.decode(), ts, int(watch)))
        return {u: (max(n, evs[-1][0] if evs else 0), evs) for u, (n, evs) in out.items()}

    def user_events(
        self,
        grant: Grant,
        user_id: str,
        *,
        limit: int = 1000,
        before_ms: int | None = None,
        after: tuple[int, str] | None = None,
    ) -> list[dict[str, Any]]:
        """A user's events, newest first (time, then id, descending): older than
        ``before_ms``, and after the event ``after`` = (time, id) of a previous page."""
        self._grants.check(grant, "read", "Events", [user_id])
        return self._events_of(user_id, limit=limit, before_ms=before_ms, after=after)

    def _events_of(
        self,
        user_id: str,
        *,
        limit: int | None,
        before_ms: int | None = None,
        after: tuple[int, str] | None = None,
    ) -> list[dict[str, Any]]:
        kid = self._user_keys([user_id]).get(user_id)
        if kid is None:
            raise UnknownRecord(f"no user {user_id!r}")
        key = self.keys.require(kid[1])
        q = select(t.events.c.id, t.events.c.ts_ms, t.events.c.payload).where(
            t.events.c.user_id == user_id
        )
        if before_ms is not None:
            q = q.where(t.events.c.ts_ms < before_ms)
        if after is not None:
            q = q.where(
                or_(
                    t.events.c.ts_ms < after[0],
                    and_(t.events.c.ts_ms == after[0], t.events.c.id < after[1]),
                )
            )
        q = q.order_by(t.events.c.ts_ms.desc(), t.events.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        out = []
        for eid, ts, blob in rows:
            video, kind, watch, raw_ctx = unseal(key.aead, blob, aad("vault_events", eid, user_id))[
                1:
            ].split(SEP, 3)
            ctx = json.loads(raw_ctx)
            out.append(
                {
                    "id": eid,
                    "user": user_id,
                    "video": video.decode(),
                    "kind": kind.decode(),
                    "ts_ms": ts,
                    "watch_ms": int(watch),
                    "context": ctx,
                }
            )
        return out

    def iter_events(
        self, grant: Grant, *, batch: int = 50_000
    ) -> Iterator[list[tuple[str, str, str, int, int]]]:
        """Every event of the grant's jurisdiction, decrypted, in batches of
        ``(user, video, kind, ts_ms, watch_ms)`` (bulk reads for training)."""
        self._grants.check(grant, "read", "Events", jurisdiction=self.site.jurisdiction)
        if grant.subjects is not None:
            raise CleanroomError("bulk reads need a jurisdiction-wide grant")
        return self._iter_events(grant.jurisdiction, batch)

    def _iter_events(
        self, jurisdiction: str, batch: int
    ) -> Iterator[list[tuple[str, str, str, int, int]]]:
        with self.db.read() as conn:
            owners = dict(
                conn.execute(
                    select(t.users.c.id, t.users.c.key_id).where(
                        t.users.c.jurisdiction == jurisdiction
                    )
                ).all()
            )
        keys = self.keys.get(set(owners.values()))
        aeads = {u: keys[k].aead for u, k in owners.items() if k in keys}
        prefix = aad_prefix("vault_events")
        sep = SEP
        with self.db.read() as conn:
            # The DB-API cursor directly: row objects cost more than the decryption.
            # On PostgreSQL a named (server-side) cursor streams instead of buffering.
            raw = conn.connection.dbapi_connection
            cur = raw.cursor() if self.db.is_sqlite else raw.cursor(name="vault_bulk_read")  # type: ignore[union-attr]
            cur.execute(
                "SELECT id, user_id, ts_ms, payload FROM vault_events ORDER BY user_id, seq"
            )
            while part := cur.fetchmany(batch):
                out = []
                append = out.append
                for eid, uid, ts, blob in part:
                    aead = aeads.get(uid)
                    if aead is None:
                        continue  # another jurisdiction, or being deleted
                    try:
                        plain = aead.decrypt(
                            blob[:NONCE], blob[NONCE:], prefix + f"{eid}\x00{uid}".encode()
                        )
                    except InvalidTag:
                        raise DecryptionError(
                            f"event {eid} does not authenticate: altered or moved"
                        ) from None
                    video, kind, watch, _ctx = plain[1:].split(sep, 3)
                    append((uid, video.decode(), kind.decode(), ts, int(watch)))
                yield out
            cur.close()

    def aggregate_counts(
        self, grant: Grant, *, by: str = "kind", min_group: int = 10
    ) -> dict[str, int]:
        """Event counts by ``kind`` or ``video``, over at least ``min_group``
        distinct users per reported group (smaller groups are suppressed)."""
        return self.aggregate_table(grant, by=by, min_group=min_group)[0]

    def aggregate_table(
        self, grant: Grant, *, by: str = "kind", min_group: int = 10
    ) -> tuple[dict[str, int], int]:
        """:meth:`aggregate_counts` and how many groups were suppressed (a grant
        to read aggregates, or the egress gate's to export them)."""
        counts: dict[str, int] = {}
        users: dict[str, set[str]] = {}
        for uid, k in self._category_records(grant, by):
            counts[k] = counts.get(k, 0) + 1
            users.setdefault(k, set()).add(uid)
        kept = {k: n for k, n in sorted(counts.items()) if len(users[k]) >= min_group}
        return kept, len(counts) - len(kept)

    def aggregate_records(
        self, grant: Grant, *, by: str = "kind"
    ) -> tuple[list[str], Iterator[tuple[str, str]]]:
        """For a differentially private release: the public categories (every
        event kind, or every video of the catalogue) and the ``(user,
        category)`` of each event, in stored order. Only noisy counts of these
        may leave the clean room (``cleanroom.gate.privacy``)."""
        records = self._category_records(grant, by)
        if by == "kind":
            return list(EVENT_KINDS), records
        with self.db.read() as conn:
            videos = list(conn.execute(select(t.videos.c.id).order_by(t.videos.c.id)).scalars())
        return videos, records

    def _category_records(self, grant: Grant, by: str) -> Iterator[tuple[str, str]]:
        """``(user, kind or video)`` of every event of the grant's jurisdiction,
        after checking the grant (at once, not when the records are read)."""
        self._grants.check(grant, ("read", "export"), "Aggregates")
        if by not in ("kind", "video"):
            raise InvalidRecord("aggregates are by 'kind' or 'video'")
        if grant.subjects is not None:
            raise CleanroomError("aggregates need a jurisdiction-wide grant")

        def records() -> Iterator[tuple[str, str]]:
            for part in self._iter_events(grant.jurisdiction, 50_000):
                for uid, video, kind, _ts, _w in part:
                    yield uid, (kind if by == "kind" else video)

        return records()

    # -- export and deletion ---------------------------------------------------

    def export_user(self, grant: Grant, user_id: str) -> dict[str, Any]:
        """Everything stored about the user, decrypted, in a portable document."""
        self._grants.check(grant, "export", "UserData", [user_id])
        user = self._user_doc(user_id)
        events = self._events_of(user_id, limit=None)
        events.reverse()
        return {
            "format": "cleanroom-export/v1",
            "exported_at": datetime.now(UTC).isoformat(),
            "user": user,
            "events": events,
            "field_classes": {k: FIELD_CLASSES[k] for k in ("user", "event")},
        }

    def user_ids(self, grant: Grant, *, limit: int = 500) -> list[str]:
        """Up to ``limit`` users of the grant's jurisdiction (jurisdiction-wide
        deletion orders walk them in batches)."""
        self._grants.check(grant, "delete", "UserData", jurisdiction=self.site.jurisdiction)
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(t.users.c.id)
                    .where(t.users.c.jurisdiction == grant.jurisdiction)
                    .order_by(t.users.c.id)
                    .limit(limit)
                ).scalars()
            )

    def users_with_events(self, grant: Grant) -> list[str]:
        """Every user of the grant's jurisdiction who has stored events (a
        jurisdiction-wide read of events: what a check of the users' online
        states walks)."""
        self._grants.check(grant, "read", "Events", jurisdiction=self.site.jurisdiction)
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(t.users.c.id)
                    .where(t.users.c.jurisdiction == grant.jurisdiction, t.users.c.events > 0)
                    .order_by(t.users.c.id)
                ).scalars()
            )

    def delete_user(self, grant: Grant, user_id: str) -> Erasure:
        """Crypto-shred a user: destroy their data key and salt first (every copy
        of their ciphertexts becomes unreadable), then delete their rows, then
        call the deletion hooks."""
        self._grants.check(grant, "delete", "UserData", [user_id])
        found = self._user_keys([user_id]).get(user_id)
        if found is None:
            raise UnknownRecord(f"no user {user_id!r}")
        kid = found[1]
        key = self.keys.get([kid]).get(kid)
        with self._lock:
            self._kept_keys.pop(user_id, None)
        destroyed = self.keys.destroy([kid]) == 1
        with self.db.write() as conn:
            n_events = conn.execute(delete(t.events).where(t.events.c.user_id == user_id)).rowcount
            n_profile = conn.execute(delete(t.users).where(t.users.c.id == user_id)).rowcount
        for hook in self.deletion_hooks:
            hook(user_id)
        return Erasure(key.salt if key else None, kid, n_events, n_profile, destroyed)

    # -- records other parts keep about a user ---------------------------------

    def seal_kept(self, grant: Grant, user_id: str, table: str, row: str, data: bytes) -> bytes:
        """Encrypt a record another part keeps about a user (a served feed's
        inputs, derived from their events) under the user's data key, bound to
        its table and row: when the user is deleted, every copy of it becomes
        unreadable. Needs a grant to read the user's events."""
        self._grants.check(grant, "read", "Events", [user_id])
        return seal(self._subject_key(user_id).aead, data, aad(table, row, user_id))

    def open_kept(self, grant: Grant, user_id: str, table: str, row: str, blob: bytes) -> bytes:
        """Decrypt what :meth:`seal_kept` made (UnknownRecord once the user is gone)."""
        self._grants.check(grant, "read", "Events", [user_id])
        return unseal(self._subject_key(user_id).aead, blob, aad(table, row, user_id))

    def _subject_key(self, user_id: str) -> SubjectKey:
        with self._lock:
            kid = self._kept_keys.get(user_id)
        if kid is None:
            found = self._user_keys([user_id]).get(user_id)
            kid = found[1] if found is not None else None
        key = self.keys.get([kid]).get(kid) if kid is not None else None
        if key is None:
            raise UnknownRecord(f"no user {user_id!r}")
        with self._lock:
            self._kept_keys[user_id] = kid
            self._kept_keys.move_to_end(user_id)
            while len(self._kept_keys) > KEPT_KEYS:
                self._kept_keys.popitem(last=False)
        return key

    # -- internals -------------------------------------------------------------

    def _user_keys(self, user_ids: list[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        with self.db.read() as conn:
            for i in range(0, len(user_ids), 900):
                chunk = user_ids[i : i + 900]
                for uid, j, kid in conn.execute(
                    select(t.users.c.id, t.users.c.jurisdiction, t.users.c.key_id).where(
                        t.users.c.id.in_(chunk)
                    )
                ):
                    out[uid] = (j, kid)
        return out

    def _check_videos(self, video_ids: set[str]) -> None:
        known: set[str] = set()
        ids = sorted(video_ids)
        with self.db.read() as conn:
            for i in range(0, len(ids), 900):
                known.update(
                    conn.execute(
                        select(t.videos.c.id).where(t.videos.c.id.in_(ids[i : i + 900]))
                    ).scalars()
                )
        if missing := video_ids - known:
            raise InvalidRecord(
                f"{len(missing)} unknown video(s), e.g. {sorted(missing)[0]!r}",
                hint="register videos with POST /v1/videos before sending events about them",
            )

    def _stored_identically(
        self, events: list[Event], keys: dict[str, Any], owners: dict[str, Any]
    ) -> bool:
        """Whether every event of the batch is stored, with the same content."""
        by_id = {e.id: e for e in events}
        with self.db.read() as conn:
            rows = []
            for i in range(0, len(events), 900):
                part = [e.id for e in events[i : i + 900]]
                rows += conn.execute(
                    select(
                        t.events.c.id, t.events.c.user_id, t.events.c.ts_ms, t.events.c.payload
                    ).where(t.events.c.id.in_(part))
                ).all()
        if len(rows) != len(events):
            return False
        for eid, user_id, ts, blob in rows:
            e = by_id[eid]
            if (user_id, ts) != (e.user, e.ts_ms):
                return False
            key = keys.get(owners[e.user][1])
            plain = unseal(key.aead, blob, aad("vault_events", eid, user_id))
            if plain != encode_event_payload(e.video, e.kind, e.watch_ms, e.context):
                return False
        return True

    @staticmethod
    def _existing_events(conn: Any, ids: list[str]) -> set[str]:
        taken: set[str] = set()
        for i in range(0, len(ids), 900):
            taken.update(
                conn.execute(
                    select(t.events.c.id).where(t.events.c.id.in_(ids[i : i + 900]))
                ).scalars()
            )
        return taken

    def _pending_key(self, user_id: str) -> SubjectKey:
        with self._lock:
            key = self._pending.get(user_id)
            if key is None:
                key = self.keys.new()
                self._pending[user_id] = key
                while len(self._pending) > 100_000:
                    self._pending.popitem(last=False)
            return key

    def _take_pending(self, user_id: str) -> SubjectKey:
        with self._lock:
            key = self._pending.pop(user_id, None)
        return key or self.keys.new()
