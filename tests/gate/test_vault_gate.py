"""The vault and the gate as a library, on SQLite and PostgreSQL: grants guard
every protected function, ciphertexts are bound to their row and user,
crypto-shredding holds on a copy taken before the deletion, the parent is
denied under every action and purpose, the decision cache, and resumable
jurisdiction-wide deletion."""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update

from cleanroom.gate import RESOURCE_CLASSES, Principal
from cleanroom.gate import OrderError as OrderErrorType
from cleanroom.gate.gate import ACTIONS, PURPOSES
from cleanroom.gate.policy import PolicyBundle, PolicyError, load_files, shipped
from cleanroom.room import CleanRoom
from cleanroom.room.assembly import keyring
from cleanroom.room.config import Config, DataDir
from cleanroom.vault import (
    AccessDenied,
    DecryptionError,
    Event,
    Grant,
    KeyStore,
    User,
    Vault,
    Video,
)
from cleanroom.vault import schema as vt
from cleanroom.vault.keystore import subject_keys
from cleanroom.vault.residency import ResidencyError
from tests.support import ORIGIN, add_principal

APP = Principal("app", "service", "platform", "ingest", "US", 1)
PARENT = Principal("pete", "person", "parent", "engineer", "US", 9)
SUPPORT = Principal("alice", "person", "operator", "support", "US", 1)


@pytest.fixture
def room(tmp_path: Path, db_url: str, log_signer) -> Iterator[CleanRoom]:
    dd = DataDir(tmp_path / "dd")
    dd.save(Config(origin=ORIGIN, database_url=db_url))
    dd.write_key("log", log_signer)
    r = CleanRoom.open(dd)
    for p in (APP, PARENT, SUPPORT):
        r.principals.add(p)
    yield r
    r.close()


def fill(room: CleanRoom, users: int = 3, events_per_user: int = 4) -> None:
    g = room.gate
    ids = [f"u{i}" for i in range(users)]
    grant = g.require(APP, "write", "Profile", subjects=ids)
    room.vault.put_users(
        grant,
        [
            User(u, "US", {"phone": f"+1 555 000 {i:04d}", "email": f"{u}@x.org"})
            for i, u in enumerate(ids)
        ],
    )
    room.vault.put_videos(g.require(APP, "write", "Videos"), [Video("v1", "c1"), Video("v2", "c2")])
    events = [
        Event(f"{u}-e{k}", u, f"v{1 + k % 2}", "view", 1000 + k, 100 * k)
        for u in ids
        for k in range(events_per_user)
    ]
    room.vault.add_events(g.require(APP, "write", "Events", subjects=ids), events)


# ------------------------------------------------------------------ grants guard the vault

# Vault functions that return no personal data and need no grant.
UNGUARDED = {"authority", "on_delete", "subjects", "counts"}

ARGS = {
    "user": User("u0", "US", {"phone": "1"}),
    "users": [User("u0", "US")],
    "user_id": "u0",
    "videos": [Video("v9", "c9")],
    "events": [Event("z1", "u0", "v1", "view", 1)],
    "table": "kept",
    "row": "r1",
    "data": b"kept about u0",
    "blob": b"\x00" * 40,
    "afters": {"u0": 0},
}


def test_every_public_vault_function_needs_a_genuine_covering_grant(room: CleanRoom) -> None:
    fill(room)
    vault = room.vault
    names = [n for n, f in inspect.getmembers(Vault, inspect.isfunction) if not n.startswith("_")]
    guarded = [n for n in names if n not in UNGUARDED]
    assert {"get_user", "add_events", "iter_events", "export_user", "delete_user"} <= set(guarded)
    good = room.gate.require(SUPPORT, "read", "Profile", purpose="support", subjects=["u0"])
    forged = Grant(**{**good.__dict__, "action": "delete", "resource": "UserData"})
    other_subject = room.gate.require(
        SUPPORT, "read", "Profile", purpose="support", subjects=["u1"]
    )
    before = vault.counts()
    for name in guarded:
        fn = getattr(vault, name)
        params = [p for p in inspect.signature(fn).parameters if p != "grant"]
        args = [ARGS[p] for p in params if p in ARGS]
        for bad in (None, "grant", forged, other_subject):
            with pytest.raises(AccessDenied):
                result = fn(bad, *args)
                if inspect.isgenerator(result) or hasattr(result, "__next__"):
                    next(iter(result))
    assert vault.counts() == before
    # a genuine grant for one user opens exactly that user
    assert vault.get_user(good, "u0")["profile"]["email"] == "u0@x.org"
    with pytest.raises(AccessDenied):
        vault.get_user(good, "u1")
    # the authority is handed out once, to the gate
    with pytest.raises(AccessDenied):
        vault.authority()


# ------------------------------------------------------------------ ciphertexts are bound


def test_swapped_or_altered_ciphertexts_are_rejected(room: CleanRoom) -> None:
    fill(room)
    grant = room.gate.require(SUPPORT, "read", "Events", purpose="support", subjects=["u0"])
    assert len(room.vault.user_events(grant, "u0")) == 4
    with room.db.write() as conn:
        p0 = conn.execute(select(vt.events.c.payload).where(vt.events.c.id == "u0-e0")).scalar()
        p1 = conn.execute(select(vt.events.c.payload).where(vt.events.c.id == "u0-e1")).scalar()
        # swap two events of the same user
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e0").values(payload=p1))
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e1").values(payload=p0))
    with pytest.raises(DecryptionError):
        room.vault.user_events(grant, "u0")
    with room.db.write() as conn:  # restore, then flip one bit
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e0").values(payload=p0))
        bad = bytearray(p1)
        bad[-1] ^= 1
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e1").values(payload=bytes(bad)))
    with pytest.raises(DecryptionError):
        room.vault.user_events(grant, "u0")
    # a profile moved to another user does not open either
    with room.db.write() as conn:
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e1").values(payload=p1))
        prof1 = conn.execute(select(vt.users.c.profile).where(vt.users.c.id == "u1")).scalar()
        conn.execute(update(vt.users).where(vt.users.c.id == "u0").values(profile=prof1))
    pg = room.gate.require(SUPPORT, "read", "Profile", purpose="support", subjects=["u0"])
    with pytest.raises(DecryptionError):
        room.vault.get_user(pg, "u0")
    # bulk reads refuse a moved event too
    with room.db.write() as conn:
        e = conn.execute(select(vt.events.c.payload).where(vt.events.c.id == "u1-e0")).scalar()
        conn.execute(update(vt.events).where(vt.events.c.id == "u0-e2").values(payload=e))
    rec = room.system("recommender")
    bulk = room.gate.require(rec, "read", "Events", purpose="recommendation", all_subjects=True)
    with pytest.raises(DecryptionError):
        list(room.vault.iter_events(bulk))


def test_nothing_personal_is_stored_in_clear(room: CleanRoom) -> None:
    fill(room)
    with room.db.read() as conn:
        blobs = [bytes(b) for b in conn.execute(select(vt.users.c.profile)).scalars()]
        blobs += [bytes(b) for b in conn.execute(select(vt.events.c.payload)).scalars()]
    for b in blobs:
        assert b"555" not in b and b"x.org" not in b and b"view" not in b


# ------------------------------------------------------------------ crypto-shredding


def test_a_copy_taken_before_the_deletion_cannot_be_decrypted(
    room: CleanRoom, tmp_path: Path
) -> None:
    fill(room)
    vault = room.vault
    # the "backup": every row of the vault as it was (and, on SQLite, the file)
    with room.db.read() as conn:
        users_before = {r.id: r for r in conn.execute(select(vt.users))}
        events_before = conn.execute(select(vt.events).where(vt.events.c.user_id == "u1")).all()
    copy = None
    if room.db.is_sqlite:
        copy = tmp_path / "before.db"
        src = sqlite3.connect(room.db.engine.url.database)
        with sqlite3.connect(copy) as dst:
            src.backup(dst)
        src.close()
    receipt = room.deletions.delete_user(
        room.system("deletion-service"), "u1", purpose="deletion_order"
    )
    item = receipt.body["deleted"][0]
    assert item["key_destroyed"] and item["events"] == 4
    assert room.log.store.entry(receipt.entry)  # the receipt is on the ledger
    key_id = users_before["u1"].key_id
    assert item["key_id"] == key_id
    # the key store no longer has the key; a fresh process cannot open the old rows
    ks = KeyStore(room.keystore_db, keyring(DataDir(room_dir(room))), ttl=0)
    assert ks.get([key_id]) == {}
    with pytest.raises(DecryptionError, match="destroyed"):
        ks.require(key_id)
    with room.keystore_db.read() as conn:
        assert (
            conn.execute(select(subject_keys).where(subject_keys.c.key_id == key_id)).first()
            is None
        )
    # the rows of the copy are intact ciphertext, but nothing opens them
    assert len(events_before) == 4
    if copy is not None:
        with sqlite3.connect(copy) as c:
            kid, blob = c.execute(
                "SELECT key_id, profile FROM vault_users WHERE id = 'u1'"
            ).fetchone()
            assert kid == key_id and len(blob) > 28
        keys_file = Path(room.keystore_db.engine.url.database).read_bytes()
        assert bytes.fromhex(key_id[3:]) not in keys_file and key_id.encode() not in keys_file
    # another user of the same copy still decrypts: the shredding is per user
    other = ks.require(users_before["u0"].key_id)
    assert other.aead is not None
    assert vault.counts()["users"] == 2


def room_dir(room: CleanRoom) -> Path:
    return Path(room.keystore_db.engine.url.database).parent.parent


def test_deletion_hooks_run_and_a_jurisdiction_order_resumes(room: CleanRoom) -> None:
    fill(room, users=450, events_per_user=1)
    dropped: list[str] = []
    room.vault.on_delete(dropped.append)
    olga = add_principal(room, Principal("olga", "person", "oversight", "regulator", "US", 5))
    order = room.deletions.order(olga, scope="jurisdiction", target="US", reason="exit order")
    executor = room.system("deletion-service")
    seen: list[tuple[int, int]] = []

    def crash_after_first_batch(done: int, total: int) -> None:
        seen.append((done, total))
        raise KeyboardInterrupt  # the process is interrupted mid-order

    with pytest.raises(KeyboardInterrupt):
        room.deletions.run(executor, order["id"], crash_after_first_batch)
    assert room.deletions.orders.get(order["id"])["status"] == "running"
    assert room.vault.counts()["users"] == 450 - 200
    done = room.deletions.run(executor, order["id"], lambda d, t: seen.append((d, t)))
    assert done["status"] == "done" and done["deleted_users"] == 450
    assert done["deleted_events"] == 450
    assert room.vault.counts() == {"users": 0, "videos": 2, "events": 0}
    assert len(dropped) == 450 and seen[-1] == (450, 450)
    with pytest.raises(OrderErrorType):
        room.deletions.order(olga, scope="jurisdiction", target="DE", reason="x")


# ------------------------------------------------------------------ deny wins


def test_parent_is_denied_every_action_and_purpose(room: CleanRoom) -> None:
    """The parent reads no protected data and writes nothing, except proposing
    a release for review (which it can never review or deploy)."""
    fill(room, users=1, events_per_user=1)
    for role in ("engineer", "support", "recommender", "deletion", "legal"):
        for kind in ("person", "service"):
            p = Principal(f"parent-{role}-{kind}", kind, "parent", role, "US", 9)
            for action in ACTIONS:
                for resource, data_class in RESOURCE_CLASSES.items():
                    for purpose in PURPOSES:
                        v, _ = room.gate.evaluate(p, action, resource, purpose=purpose)
                        proposes = (action, resource, purpose) == (
                            "write",
                            "Releases",
                            "release_submit",
                        )
                        if proposes:  # the one write it has: code and models for review
                            assert v.allowed, (p, action, resource, purpose)
                        elif data_class == "protected" or action != "read":
                            assert not v.allowed, (p, action, resource, purpose)


@functools.cache
def permit_all() -> PolicyBundle:
    """The shipped policy set with an extra ``permit`` for everything."""
    files = dict(shipped().files)
    files["zz-permit-all.cedar"] = '@id("permit-all")\npermit (principal, action, resource);'
    return load_files(files)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["person", "service", "user"]),
    role=st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
    | st.sampled_from(["support", "safety", "legal", "recommender", "deletion"]),
    clearance=st.integers(0, 9),
    action=st.sampled_from(ACTIONS),
    resource=st.sampled_from([r for r, c in RESOURCE_CLASSES.items() if c == "protected"]),
    purpose=st.sampled_from(PURPOSES),
    self_access=st.booleans(),
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # decided by Cedar, not stored
def test_parent_never_gets_protected_data_even_with_a_permit_all_policy(
    room: CleanRoom, kind, role, clearance, action, resource, purpose, self_access
) -> None:
    """Forbid wins: even a policy set with an extra ``permit`` for everything
    keeps the parent out of protected data."""
    p = Principal("pete-h", kind, "parent", role, "US", clearance)
    for policy in (shipped(), permit_all()):
        room.gate.set_policy(policy)
        v, _ = room.gate.evaluate(p, action, resource, purpose=purpose, self_access=self_access)
        assert not v.allowed
        assert "parent-never-protected" in v.rules or v.rules == ("request-outside-schema",)
    room.gate.set_policy(shipped())


def test_decisions_are_cached_and_the_cache_follows_policy_and_principal(room: CleanRoom) -> None:
    g = room.gate
    v1, cached1 = g.evaluate(SUPPORT, "read", "Profile", purpose="support")
    v2, cached2 = g.evaluate(SUPPORT, "read", "Profile", purpose="support")
    assert v1 == v2 and v1.allowed and not cached1 and cached2
    # a changed principal (other role) is another key: no stale allow
    demoted = Principal("alice", "person", "operator", "marketing", "US", 1)
    v3, cached3 = g.evaluate(demoted, "read", "Profile", purpose="support")
    assert not v3.allowed and not cached3
    # a new policy set empties the cache
    files = dict(shipped().files)
    files["clean-room.cedar"] = files["clean-room.cedar"].replace(
        '["support", "safety", "legal"]', '["safety", "legal"]'
    )
    g.set_policy(load_files(files))
    v4, cached4 = g.evaluate(SUPPORT, "read", "Profile", purpose="support")
    assert not v4.allowed and not cached4
    g.set_policy(shipped())


def test_policy_sets_are_validated_before_use() -> None:
    files = dict(shipped().files)
    files["bad.cedar"] = (
        '@id("x")\npermit (principal, action, resource) when { principal.shoe == 1 };'
    )
    with pytest.raises(PolicyError, match="validate"):
        load_files(files)
    files = dict(shipped().files)
    files["noid.cedar"] = "permit (principal, action, resource);"
    with pytest.raises(PolicyError, match="@id"):
        load_files(files)
    assert shipped().version.startswith("sha256:")
    assert shipped().obligations["staff-with-role-and-purpose"] == ("mask:phone", "mask:ip_address")


def test_residency_is_enforced_by_the_vault(room: CleanRoom) -> None:
    grant = room.gate.require(APP, "write", "Profile", subjects=["fr1"])
    with pytest.raises(ResidencyError):
        room.vault.put_user(grant, User("fr1", "FR"))
    assert room.vault.counts()["users"] == 0


def test_bulk_reads_and_aggregates(room: CleanRoom) -> None:
    fill(room, users=12, events_per_user=3)
    rec = room.system("recommender")
    bulk = room.gate.require(rec, "read", "Events", purpose="recommendation", all_subjects=True)
    rows = [r for part in room.vault.iter_events(bulk, batch=7) for r in part]
    assert len(rows) == 36
    assert rows[0] == ("u0", "v1", "view", 1000, 0)
    rita = room.principals.add(Principal("rita", "person", "researcher", "sci", "US", 1))
    agg = room.gate.require(rita, "read", "Aggregates", purpose="research", all_subjects=True)
    assert room.vault.aggregate_counts(agg, by="video", min_group=12) == {"v1": 24, "v2": 12}
    assert room.vault.aggregate_counts(agg, by="video", min_group=13) == {}
    with pytest.raises(AccessDenied):
        room.gate.require(rita, "read", "Events", purpose="research", all_subjects=True)


def test_keystore_lives_apart_from_the_records(room: CleanRoom) -> None:
    fill(room, users=2)
    assert room.keystore_db.url != room.db.url
    assert "vault_subject_keys" not in sa_inspect(room.db.engine).get_table_names()
    assert "vault_users" in sa_inspect(room.db.engine).get_table_names()
    assert room.vault.keys.count() == 2


def test_orders_of_a_clean_room_made_before_they_moved_to_the_gate_are_kept(
    tmp_path: Path, db_url: str, log_signer
) -> None:
    """A data directory whose deletion orders are still in the vault's old
    table: opening it carries every order over to the gate's table."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData

    from cleanroom.gate.deletion import LEGACY_TABLE, orders_t
    from cleanroom.storage import Database

    db = Database(db_url)
    legacy = orders_t.to_metadata(MetaData(), name=LEGACY_TABLE)
    order = {"id": "do-old", "scope": "jurisdiction", "target": "US", "issued_by": "olga",
             "reason": "exit order", "deadline_ms": 1, "status": "running", "deleted_users": 3,
             "deleted_events": 9, "created_at": datetime.now(UTC), "finished_at": None}  # fmt: skip
    with db.write() as conn:
        legacy.create(conn)
        conn.execute(legacy.insert(), [order])
    db.dispose()
    dd = DataDir(tmp_path / "dd")
    dd.save(Config(origin=ORIGIN, database_url=db_url))
    dd.write_key("log", log_signer)
    with CleanRoom.open(dd, background=False) as room:
        [kept] = room.deletions.orders.list()
        assert {k: kept[k] for k in ("id", "status", "deleted_users", "reason")} == {
            "id": "do-old", "status": "running", "deleted_users": 3, "reason": "exit order"
        }  # fmt: skip
        with room.db.read() as conn:
            assert not sa_inspect(conn).has_table(LEGACY_TABLE)
