"""Steps 3-12: the platform loads its data through the API, people reach it
under the gate, and the For You engine trains, serves, explains and forgets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.panel import Panel

from cleanroom.demo.narration import DATASET, console, step
from cleanroom.ledger.serving import ServerProcess
from cleanroom.room.config import DataDir


def ledger_size(log_dir: Path) -> int:
    with sqlite3.connect(log_dir / "cleanroom.db") as con:
        return con.execute("SELECT next_index FROM ledger_state").fetchone()[0]


def clean_room(server: ServerProcess, tokens: dict[str, str], log_dir: Path, base: Path) -> None:
    from cleanroom.room import datasets

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        return httpx.request(method, server.url + path, headers=headers, timeout=60, **kw)

    step(f"3. The platform loads {DATASET} from its files with cleanroom load, through the API")
    console.print(f"{DATASET}: {datasets.describe()}")
    files = datasets.export(DATASET, base / "warehouse")
    env = {**os.environ, "CLEANROOM_TOKEN": tokens["platform-app"]}
    t0 = time.perf_counter()
    for kind, path in files.items():
        console.print(f"[dim]$ cleanroom load {kind} {path.relative_to(base.parent)} "
                      f"--url {server.url}   (token in CLEANROOM_TOKEN)")  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "cleanroom.cli", "load", kind, str(path), "--url", server.url],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"cleanroom load {kind} failed: {out.stderr[-2000:]}")
        console.print(out.stdout.strip())
    dt = time.perf_counter() - t0
    console.print(
        f"every row through the gate, stored encrypted under per-user keys, in {dt:.1f} s"
    )

    step("4. An engineer of the foreign parent asks for a user's profile: denied")
    r = call("GET", "/v1/users/u14", "pete-parent", params={"purpose": "support"})
    console.print(f"[bold red]{r.status_code}[/] {r.headers['content-type']}: {r.json()['detail']}")

    step("5. A support agent, with her role's purpose, sees the profile with masked fields")
    r = call("GET", "/v1/users/u14", "alice-support", params={"purpose": "support"})
    doc = r.json()
    console.print(f"[green]{r.status_code}[/] decision {doc['decision']}, masked {doc['masked']}")
    console.print(doc["profile"])
    r = call("GET", "/v1/users/u14", "alice-support", params={"purpose": "legal"})
    console.print(f"same agent, purpose 'legal': [bold red]{r.status_code}[/] {r.json()['detail']}")
    r = call("GET", "/v1/aggregates/events", "rita-research", params={"purpose": "research"})
    console.print(f"a researcher gets aggregates only: {r.json()['counts']}")
    r = call("GET", "/v1/users/u14/events", "rita-research", params={"purpose": "research"})
    console.print(f"…and not events: [bold red]{r.status_code}[/]")

    step("6. User u14 exports their data (GET /v1/me/data)")
    r = call("GET", "/v1/me/data", "viewer-14")
    export = r.json()
    out = base / "export-u14.json"
    out.write_text(json.dumps(export, indent=1))
    console.print(
        f"{len(export['events'])} events and {len(export['user']['profile'])} profile fields "
        f"(synthetic: {export['user']['synthetic']}) written to {out}"
    )

    step("7. A copy of the database is taken; then user u14 deletes their account")
    copy = base / "backup-before-deletion.db"
    with sqlite3.connect(log_dir / "cleanroom.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    r = call("DELETE", "/v1/me", "viewer-14")
    receipt = r.json()
    console.print(
        Panel(json.dumps(receipt, indent=1), title=f"receipt (ledger entry {receipt['receipt']})")
    )

    step("8. The pre-deletion copy can no longer be decrypted for u14 (crypto-shredding)")
    shredded(copy, log_dir)


def show_feed(doc: dict, n: int = 5) -> None:
    for k, item in enumerate(doc["items"][:n], 1):
        why = "; ".join(r["text"] for r in item["why"][:2]) or ", ".join(item["sources"])
        console.print(f"  {k}. {item['video']:>6} by {item['creator']:<12} {why}")


def for_you(server: ServerProcess, tokens: dict[str, str]) -> None:
    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        r = httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)
        r.raise_for_status()
        return r

    step("9. The For You model trains on the vault's events, read through the gate")
    t = time.perf_counter()
    model: dict = {}
    asked = 0.0
    while time.perf_counter() - t < 300:
        model = httpx.get(server.url + "/v1/feed/model", timeout=30).json()
        trained = model.get("trained") or {}
        if trained.get("records", 0) >= 250_000 and model.get("ready"):
            break
        if time.perf_counter() - asked > 5:
            # 409: a retraining started while the events arrived (on fewer of
            # them) still runs; ask again once it is done
            r = httpx.post(server.url + "/v1/recommender/retrain", timeout=120,
                           headers={"Authorization": f"Bearer {tokens['oscar-ops']}"})  # fmt: skip
            if r.status_code not in (202, 409):
                r.raise_for_status()
            asked = time.perf_counter()
        time.sleep(0.5)
    trained = model["trained"]
    console.print(
        f"model {trained['model_version'][:23]}… trained in {trained['seconds']} s on "
        f"{trained['records']:,} engagements of {trained['users']:,} users "
        f"({trained['jurisdiction']} only; read allowed by ledger decision "
        f"{trained['read_decision']}; lineage in entry {trained['index']})"
    )
    console.print("derived: " + "; ".join(model["derived"]))
    weights = httpx.get(server.url + "/v1/feed/config", timeout=30).json()["weights"]
    console.print(f"published ranking weights (GET /v1/feed/config): {weights}")

    step("10. User u15's feed, each item with why it is there; every page on the ledger")
    first = call("GET", "/v1/feed", "viewer-15", params={"limit": 5, "seed": "demo"}).json()
    show_feed(first)
    console.print(
        f"ledger entry {first['ledger_index']}: model, state and pool digests, no personal data"
    )
    replay = call("POST", f"/v1/oversight/feeds/{first['feed']}/replay", "olga-oversight").json()
    console.print(f"the oversight body replays it: match = [bold green]{replay['match']}[/]")
    # u15 marks the top video not interested and watches the fourth to the end
    top, liked = first["items"][0]["video"], first["items"][3]["video"]
    now = int(time.time() * 1000)
    events = [
        {
            "id": "demo-ni",
            "user": "u15",
            "video": top,
            "kind": "not_interested",
            "ts_ms": now,
            "watch_ms": 0,
        },
        {
            "id": "demo-lv",
            "user": "u15",
            "video": liked,
            "kind": "view",
            "ts_ms": now + 1,
            "watch_ms": 45_000,
        },
    ]
    t = time.perf_counter()
    call("POST", "/v1/events", "platform-app", json={"events": events})
    after = call("GET", "/v1/feed", "viewer-15", params={"limit": 5, "seed": "demo"}).json()
    dt = (time.perf_counter() - t) * 1000
    console.print(
        f"u15 marks {top} not interested and watches {liked}; {dt:.0f} ms later the feed is:"
    )
    show_feed(after)

    step("11. The non-personalised feed (EU DSA Art. 38): the same for everyone in the region")
    call("PUT", "/v1/me/feed-settings", "viewer-15", json={"mode": "popular"})
    a = call("GET", "/v1/feed", "viewer-15", params={"limit": 5}).json()
    b = call("GET", "/v1/feed", "viewer-16", params={"limit": 5, "mode": "popular"}).json()
    show_feed(a)
    same = [i["video"] for i in a["items"]] == [i["video"] for i in b["items"]]
    console.print(f"u15 (setting) and u16 (per request) get the same list: [bold green]{same}[/]")

    step("12. User u16 deletes their account: the model forgets them exactly")
    before = httpx.get(server.url + "/v1/feed/model", timeout=30).json()["version"]
    call("DELETE", "/v1/me", "viewer-16")
    for _ in range(200):
        m = httpx.get(server.url + "/v1/feed/model", timeout=30).json()
        if m["forgotten_users"] >= 1 and m["version"] != before:
            break
        time.sleep(0.1)
    console.print(
        f"model {before[:23]}… -> {m['version'][:23]}… ({m['forgotten_users']} user forgotten "
        "by a Woodbury downdate of the item-item model, no retraining; a test checks it "
        "equals a model retrained without them)"
    )


def shredded(copy: Path, log_dir: Path) -> None:
    """Open the backup with everything the operator still has: keyring and key store."""
    from cleanroom.room.assembly import keyring
    from cleanroom.storage import Database
    from cleanroom.vault import DecryptionError, KeyStore, aad

    dd = DataDir(log_dir)
    keystore_db = Database(dd.keystore_url())
    keys = KeyStore(keystore_db, keyring(dd), ttl=0)
    with sqlite3.connect(copy) as con:
        rows = {
            uid: (kid, blob)
            for uid, kid, blob in con.execute(
                "SELECT id, key_id, profile FROM vault_users WHERE id IN ('u14', 'u15')"
            )
        }
        n_events = con.execute(
            "SELECT count(*) FROM vault_events WHERE user_id = 'u14'"
        ).fetchone()[0]
    kid, blob = rows["u14"]
    console.print(
        f"the copy still holds u14's row ({len(blob)} bytes of ciphertext, key {kid}) "
        f"and {n_events} of their events"
    )
    try:
        keys.require(kid)
        console.print("[red]the key still exists: shredding FAILED")
        raise SystemExit(1)
    except DecryptionError as exc:
        console.print(f"[bold green]unreadable[/]: {exc.message}")
    kid2, blob2 = rows["u15"]
    key2 = keys.require(kid2)
    profile = json.loads(
        key2.aead.decrypt(blob2[:12], blob2[12:], aad("vault_users", "u15", "u15"))
    )
    console.print(f"(u15 in the same copy still decrypts: handle {profile['handle']})")
    keystore_db.dispose()
