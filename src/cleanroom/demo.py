"""``make demo``: a clean room end to end, on the embedded default.

Init a clean room (SQLite, local keys) and an independent witness; the
platform loads the bundled kuairec-small data over the API (profiles
synthesized and marked so); an engineer of the parent is denied, a support
agent sees masked fields, a user exports their data and deletes their account
(a copy of the database taken before can no longer be decrypted for them);
the For You engine trains on the vault's events through the gate, serves
explained feeds that change with a user's events and that the oversight body
replays, gives everyone in a region the same non-personalised feed, and
forgets a deleted user exactly; then the ledger: a checkpoint the witness
cosigns, an outside monitor verifying over HTTP, an inclusion proof checked
offline, a forked checkpoint refused, and an insider's edit of two decisions
caught.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress

from cleanroom.config import Config, DataDir, WitnessRef
from cleanroom.ledger import MemoryTree, sign_note
from cleanroom.ledger.authority import sign_boost_review
from cleanroom.ledger.checkpoint import Checkpoint, parse_checkpoint
from cleanroom.ledger.client import Monitor, TamperError
from cleanroom.ledger.note import ALG_COSIGNATURE_V1, Signer, generate_signer, parse_note
from cleanroom.ledger.serving import serve_in_thread
from cleanroom.ledger.store import LedgerStore
from cleanroom.ledger.tlogproof import verify_tlog_proof
from cleanroom.ledger.witness import AddCheckpointRequest, Witness
from cleanroom.oversight.witness import MonitorWitness, init_key
from cleanroom.servers import ServerProcess

console = Console()
ORIGIN = "cleanroom.example/log"
DATASET = "kuairec-small"
EVENT_BATCH = 5000
PUPPET_PAGES = 12
FLAGGED = "t:12"  # the audit's flagged topic (derived topics carry no meaning)
DEMO_PRINCIPALS = [  # name, kind, org, role, clearance, subject
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


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def run_demo(keep: bool = False) -> None:
    base = Path(".cleanroom/demo").resolve()
    shutil.rmtree(base, ignore_errors=True)
    log_dir, witness_dir, monitor_dir = base / "operator", base / "witness", base / "monitor"

    _step("1. The operator initialises a clean room (SQLite + local keys, site in the US)")
    dd, log_signer = init_data_dir(log_dir, ORIGIN)
    log_vkey = log_signer.verifier.vkey
    tokens = register_principals(dd)
    console.print(f"log verifier key: [green]{log_vkey}")
    console.print("principals: " + ", ".join(f"{n} ({d})" for n, (_, d) in tokens.items()))

    _step("2. The oversight body runs its own witness and pins the log's key")
    wd = DataDir(witness_dir)
    wd.save(Config(origin="oversight.example/witness"))
    w_signer = generate_signer("oversight.example/w1", ALG_COSIGNATURE_V1)
    wd.write_key("witness", w_signer)
    wdb = wd.database()
    Witness(wdb, w_signer).trust_log(ORIGIN, [log_vkey])
    wdb.dispose()
    console.print(f"witness verifier key: [green]{w_signer.verifier.vkey}")

    witness = ServerProcess(witness_dir, witness_only=True).wait_ready()
    config = dd.load()
    config.witnesses = [WitnessRef(w_signer.verifier.vkey, witness.url + "/witness")]
    dd.save(config)
    server = ServerProcess(log_dir).wait_ready()
    try:
        _clean_room(server, {n: t for n, (t, _) in tokens.items()}, log_dir, base)
        _for_you(server, {n: t for n, (t, _) in tokens.items()})
        _releases(dd, server, tokens["olga-oversight"][0])
        _screening(dd, server, {n: t for n, (t, _) in tokens.items()}, base)
        # the rest runs the same clean room in this process: a rogue operator
        # with the machine patches the running ranking (what a process apart hides)
        server.stop()
        # the oversight body's monitor is a witness too: the operator adds it
        state = base / "oversight"
        m_vkey = init_key(state, "oversight.example/monitor")
        m_witness = MonitorWitness(state, ORIGIN, log_vkey).serve()
        m_url = m_witness.url
        config = dd.load()
        config.witnesses.append(WitnessRef(m_vkey.vkey, m_url + "/witness"))
        dd.save(config)
        try:
            with InProcessServer(log_dir) as live:
                _oversight(live, {n: t for n, (t, _) in tokens.items()}, state, log_vkey)
                _ledger(live, witness, log_dir, monitor_dir, log_vkey, w_signer, m_vkey)
        finally:
            m_witness.stop()
    finally:
        server.stop()
        witness.stop()
        note = "kept" if keep else "left for inspection until the next run"
        console.print(f"(demo data in {base}: {note})")


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
    from cleanroom.deployment import add_oversight_principal
    from cleanroom.gate import Principal
    from cleanroom.room import CleanRoom

    out = {}
    with CleanRoom.open(dd, background=False) as room:
        for name, kind, org, role, clearance, subject in DEMO_PRINCIPALS:
            p = Principal(name, kind, org, role, "US", clearance, subject)
            if org == "oversight":  # the demo plays the oversight body, with its root key
                add_oversight_principal(room, dd, p)
            else:
                room.principals.add(p)
            out[name] = (room.principals.issue_token(name), f"{org}/{role}")
        room.log.integrate()
    return out


def _ledger_size(log_dir: Path) -> int:
    with sqlite3.connect(log_dir / "cleanroom.db") as con:
        return con.execute("SELECT next_index FROM ledger_state").fetchone()[0]


async def load_through_api(url: str, token: str, users, videos, events) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
        with Progress(console=console, transient=True) as bar:
            t_users = bar.add_task(f"PUT /v1/users ({len(users)})", total=len(users))

            async def put(u) -> None:
                async with sem:
                    body = {
                        "jurisdiction": u.jurisdiction,
                        "profile": u.profile,
                        "public": u.public,
                        "synthetic": True,
                    }
                    r = await c.put(f"/v1/users/{u.id}", json=body)
                    r.raise_for_status()
                    bar.advance(t_users)

            await asyncio.gather(*(put(u) for u in users))
            for i in range(0, len(videos), 1000):
                part = [
                    {"id": v.id, "creator": v.creator, "created_ms": v.created_ms}
                    for v in videos[i : i + 1000]
                ]
                (await c.post("/v1/videos", json={"videos": part})).raise_for_status()
            t_events = bar.add_task(f"POST /v1/events ({len(events):,})", total=len(events))
            sem2 = asyncio.Semaphore(2)

            async def send(part) -> None:
                async with sem2:
                    r = await c.post("/v1/events", json={"events": [e.to_dict() for e in part]})
                    r.raise_for_status()
                    bar.advance(t_events, len(part))

            await asyncio.gather(
                *(send(events[i : i + EVENT_BATCH]) for i in range(0, len(events), EVENT_BATCH))
            )


def _clean_room(server: ServerProcess, tokens: dict[str, str], log_dir: Path, base: Path) -> None:
    from cleanroom import datasets

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        return httpx.request(method, server.url + path, headers=headers, timeout=60, **kw)

    _step(f"3. The platform loads {DATASET} through the API (every write through the gate)")
    users, videos, events = datasets.load(DATASET)
    console.print(f"{DATASET}: {datasets.describe()}")
    t0 = time.perf_counter()
    asyncio.run(load_through_api(server.url, tokens["platform-app"], users, videos, events))
    dt = time.perf_counter() - t0
    console.print(
        f"{len(users):,} users, {len(videos):,} videos, {len(events):,} events stored "
        f"encrypted under per-user keys in {dt:.1f} s ({len(events) / dt:,.0f} events/s overall)"
    )

    _step("4. An engineer of the foreign parent asks for a user's profile: denied")
    r = call("GET", "/v1/users/u14", "pete-parent", params={"purpose": "support"})
    console.print(f"[bold red]{r.status_code}[/] {r.headers['content-type']}: {r.json()['detail']}")

    _step("5. A support agent, with her role's purpose, sees the profile with masked fields")
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

    _step("6. User u14 exports their data (GET /v1/me/data)")
    r = call("GET", "/v1/me/data", "viewer-14")
    export = r.json()
    out = base / "export-u14.json"
    out.write_text(json.dumps(export, indent=1))
    console.print(
        f"{len(export['events'])} events and {len(export['user']['profile'])} profile fields "
        f"(synthetic: {export['user']['synthetic']}) written to {out}"
    )

    _step("7. A copy of the database is taken; then user u14 deletes their account")
    copy = base / "backup-before-deletion.db"
    with sqlite3.connect(log_dir / "cleanroom.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    r = call("DELETE", "/v1/me", "viewer-14")
    receipt = r.json()
    console.print(
        Panel(json.dumps(receipt, indent=1), title=f"receipt (ledger entry {receipt['receipt']})")
    )

    _step("8. The pre-deletion copy can no longer be decrypted for u14 (crypto-shredding)")
    _shredded(copy, log_dir)


def _show_feed(doc: dict, n: int = 5) -> None:
    for k, item in enumerate(doc["items"][:n], 1):
        why = "; ".join(r["text"] for r in item["why"][:2]) or ", ".join(item["sources"])
        console.print(f"  {k}. {item['video']:>6} by {item['creator']:<12} {why}")


def _for_you(server: ServerProcess, tokens: dict[str, str]) -> None:
    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        r = httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)
        r.raise_for_status()
        return r

    _step("9. The For You model trains on the vault's events, read through the gate")
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

    _step("10. User u15's feed, each item with why it is there; every page on the ledger")
    first = call("GET", "/v1/feed", "viewer-15", params={"limit": 5, "seed": "demo"}).json()
    _show_feed(first)
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
    _show_feed(after)

    _step("11. The non-personalised feed (EU DSA Art. 38): the same for everyone in the region")
    call("PUT", "/v1/me/feed-settings", "viewer-15", json={"mode": "popular"})
    a = call("GET", "/v1/feed", "viewer-15", params={"limit": 5}).json()
    b = call("GET", "/v1/feed", "viewer-16", params={"limit": 5, "mode": "popular"}).json()
    _show_feed(a)
    same = [i["video"] for i in a["items"]] == [i["video"] for i in b["items"]]
    console.print(f"u15 (setting) and u16 (per request) get the same list: [bold green]{same}[/]")

    _step("12. User u16 deletes their account: the model forgets them exactly")
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


def _releases(dd: DataDir, server: ServerProcess, oversight_token: str) -> None:
    """Issue 5: only reviewed models run. The parent's change is shown to the
    reviewers and cannot load; a legitimate change is approved and deploys;
    the oversight body checks it all from the ledger."""
    from cleanroom import datasets
    from cleanroom.deployment import (
        diff_lines,
        load_model_config,
        model_digest,
        model_manifest,
        sign_review,
    )
    from cleanroom.foryou import RankingConfig
    from cleanroom.release import NotApproved
    from cleanroom.release.verify import ledger_entries, replay
    from cleanroom.room import CleanRoom

    _step("13. The parent submits a model change that quietly boosts one creator")
    with CleanRoom.open(dd, background=False) as room:
        reg = room.releases
        live = reg.live("model")
        shipped = RankingConfig.shipped().raw
        creator = datasets.load(DATASET)[1][0].creator
        rerank = {**shipped.get("rerank", {}), "creator_boosts": {creator: 3.0}}
        sneaky = model_manifest(RankingConfig.parse({**shipped, "rerank": rerank}))
        art = reg.submit(
            "model", "engagement tuning", model_digest(sneaky), sneaky,
            submitted_by="pete-parent", org="parent",
        )  # fmt: skip
        console.print("what the reviewers see ([bold]cleanroom release diff[/]):")
        for line in diff_lines(room, art.digest):
            console.print(f"  {line}", highlight=False)
        shown = httpx.get(
            f"{server.url}/v1/releases/{art.digest}",
            params={"evaluate": "true"},
            headers={"Authorization": f"Bearer {oversight_token}"},
            timeout=60,
        ).json()["feed_change"]
        console.print(
            f"  how feeds would change (GET /v1/releases/…?evaluate=true, {shown['users']} users, "
            f"top {shown['top']}): {shown['feeds_changed']} feeds change, videos of "
            f"{creator} go from {shown['boosted_share_before']:.1%} to "
            f"{shown['boosted_share_after']:.1%} of what is shown"
        )
        try:
            reg.deploy(art.digest, by="oscar-ops")
        except NotApproved as e:
            console.print(f"deploy refused, on the record: [red]{e.message}[/]")
        legit_doc = {**shipped, "exploration": 0.03}
        legit = model_manifest(RankingConfig.parse(legit_doc))
        good = reg.submit(
            "model", "a little more exploration", model_digest(legit), legit,
            submitted_by="oscar-ops", org="operator",
        )  # fmt: skip
        for name, org in (("operator-reviewer", "operator"), ("oversight-reviewer", "oversight")):
            verdict = reg.review(
                good.digest, sign_review(dd.read_key(f"reviewer-{name}"), good, org=org)
            )
        console.print(
            f"a legitimate change ({good.digest[:23]}…): approved by {', '.join(verdict.counted)} "
            "with their own keys (in-toto review statements in DSSE envelopes)"
        )
        reg.deploy(good.digest, by="oscar-ops")
        cfg, loaded = load_model_config(room)  # what the server runs at start-up
        console.print(
            f"the deploy check the server runs at start-up now loads {loaded.digest[:23]}… "
            f"(exploration {cfg.exploration}); "
            f"deployment proven at ledger index {loaded.deployment_index} in a checkpoint of "
            f"size {loaded.checkpoint_size}; it was {live.artifact[:23] if live else '-'}… before"
        )
        room.log.integrate()
        entries = ledger_entries(room.log.store)
    view = replay(entries)
    now = view.live("model")
    console.print(
        f"oversight, from the ledger and public keys alone: live model {now['artifact'][:23]}… "
        f"(deployed at entry {now['index']}), the parent's artifact approved: "
        f"{view.verdict(art.digest).approved}, problems found: {len(view.problems)}"
    )


MANIFEST = """\
deployment: cleanroom-us-east
jurisdiction: US
providers:
  - {kind: cloud, name: Oracle Cloud Infrastructure, country: US}
  - {kind: cdn, name: Alibaba Cloud, country: CN}
  - {kind: carrier, name: Lumen Technologies, country: US}
  - {kind: equipment, name: "Hangzhou Hikvision Digital Technology Co., Ltd.", category: camera,
     product: lobby cameras, country: CN}
"""


def _screening(dd: DataDir, server: ServerProcess, tokens: dict[str, str], base: Path) -> None:
    """Issue 6: data leaves only to screened recipients, of permitted classes,
    on record; the clean room does not run on covered providers."""
    from cleanroom.deployment import InfraRefused, check_infrastructure
    from cleanroom.room import CleanRoom

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        h = {"Authorization": f"Bearer {tokens[who]}"}
        return httpx.request(method, server.url + path, headers=h, timeout=120, **kw)

    _step("14. Exports through the egress gate: a listed company is refused, a researcher served")
    r = call("POST", "/v1/screen", "alice-support", json={"name": "海康威视", "explain": True})
    doc = r.json()
    best = doc["candidates"][0]
    feats = best["explanation"]["features"]
    console.print(
        f"screen '海康威视' -> [bold]{doc['decision']}[/]: {best['listed_name']} on {best['list']} "
        f"(score {best['score']:.2f}; tokens {best['explanation']['query_tokens']} vs "
        f"{best['explanation']['candidate_tokens']}; weakest pair "
        f"{feats['weakest_pair']['value']:.2f}, joined {feats['joined']['value']:.2f})"
    )
    dahua = "Zhejiang Dahua Technology Co., Ltd."
    refused = call("POST", "/v1/exports", "rita-research",
                   json={"recipient": dahua, "country": "CN", "kind": "aggregates"})  # fmt: skip
    console.print(f"export of aggregates to Zhejiang Dahua Technology (CN): "
                  f"[red]{refused.status_code}[/] {refused.json()['detail']}")  # fmt: skip
    ok = call("POST", "/v1/exports", "rita-research", json={
        "recipient": "Example State University Social Media Lab", "country": "US",
        "kind": "aggregates", "by": "kind", "min_group_size": 10})  # fmt: skip
    body = ok.json()
    if ok.status_code != 200:
        raise RuntimeError(f"the export to the university lab failed: {ok.status_code} {body}")
    dp = body["privacy"]
    console.print(f"export of aggregates to a university lab (US): [green]{ok.status_code}[/], "
                  f"a differentially private release (ε {dp['epsilon']}, each user counted for "
                  f"at most {dp['contribution_bound']} events; ε {dp['spent']} of "
                  f"{dp['budget']} spent, entry {dp['ledger_index']}): {body['data']} "
                  f"({body['suppressed_groups']} groups under 10 withheld)")  # fmt: skip
    profile = call("POST", "/v1/exports", "oscar-ops", json={
        "recipient": "Example State University Social Media Lab", "country": "US",
        "kind": "user_data"})  # fmt: skip
    console.print(f"export of user data, same lab: [red]{profile.status_code}[/] "
                  f"{profile.json()['detail']}")  # fmt: skip
    flows = call("GET", "/v1/exports", "olga-oversight").json()
    dest = [(f["country"], f["data_class"], f["decision"]) for f in flows["by_destination"]]
    console.print(f"the oversight body counts the flows on the ledger: {flows['flows']} flows, "
                  f"{flows['allowed']} allowed, {flows['refused']} refused, by destination "
                  f"{dest}")  # fmt: skip

    _step("15. The Clean Network check of a deployment manifest")
    manifest = base / "deploy.yaml"
    manifest.write_text(MANIFEST)
    with CleanRoom.open(dd, background=False) as room:
        try:
            check_infrastructure(room, manifest)
            console.print("manifest clean")
        except InfraRefused as e:
            for f in e.report["findings"]:
                if f["flagged"]:
                    console.print(f"[red]FLAGGED[/] {f['kind']} {f['name']}: "
                                  f"{'; '.join(f['reasons'])}", highlight=False)  # fmt: skip
            console.print(f"a server configured with this manifest refuses to start: "
                          f"[red]{e.message}[/]")  # fmt: skip
        room.log.integrate()


def _shredded(copy: Path, log_dir: Path) -> None:
    """Open the backup with everything the operator still has: keyring and key store."""
    from cleanroom.room import keyring
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


class InProcessServer:
    """The clean room's app served from this process (uvicorn in a thread),
    entered once its first model is live."""

    def __init__(self, data_dir: Path) -> None:
        from cleanroom.api import create_app

        self.app = create_app(str(data_dir))

    def __enter__(self) -> InProcessServer:
        self.served = serve_in_thread(self.app, name="cleanroom", wait_s=300)
        self.url = self.served.url
        deadline = time.monotonic() + 300
        while not httpx.get(self.url + "/v1/feed/model", timeout=30).json().get("ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process server's model did not become ready")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.stop(300)  # its shutdown closes the clean room (after a retraining)


def _lone_operator(live: InProcessServer, call: Any, watcher: Any, tokens: dict[str, str]) -> None:
    """Step 17: the operator approves a model with two of its own reviewers
    (refused), forges a review through the ledger API (refused) and then
    around it, in its own database (flagged by the monitor)."""
    from cleanroom.deployment import sign_review
    from cleanroom.foryou.ranker import RankingConfig

    _step("17. The operator tries to approve a release alone and to forge the oversight's review")
    room = live.app.state.room
    tokens["ledger-writer"] = room.principals.issue_token("ledger-writer")
    second = generate_signer("oscar-ops")
    room.releases.add_reviewer("oscar-ops", "operator", second.verifier.vkey, added_by="init")
    cfg = {**RankingConfig.shipped().raw, "exploration": 0.04}
    art = call("POST", "/v1/releases", "alice-support",
               json={"kind": "model", "name": "operator's own tuning",
                     "manifest": {"config": cfg}}).json()  # fmt: skip
    artifact = room.releases.get(art["digest"])
    op_key = room.data_dir.read_key("reviewer-operator-reviewer")
    for key in (op_key, second):
        verdict = call("POST", f"/v1/releases/{art['digest']}/reviews", "oscar-ops",
                       json=sign_review(key, artifact, org="operator")).json()  # fmt: skip
    refused = httpx.post(live.url + f"/v1/releases/{art['digest']}/deploy", timeout=60,
                         headers={"Authorization": f"Bearer {tokens['oscar-ops']}"})  # fmt: skip
    why = refused.json()["detail"].rsplit("not approved: ", 1)[-1]
    console.print(
        f"two operator reviewers approve {art['digest'][:23]}…: still missing "
        f"[bold]{verdict['missing']}[/]; deploy refused: {refused.status_code} ({why})"
    )
    forged = sign_review(generate_signer("oversight-reviewer"), artifact, org="oversight")
    review = {"type": "release.review", "v": 1, "artifact": art["digest"],
              "reviewer": "oversight-reviewer", "org": "oversight", "decision": "approve",
              "envelope": forged, "at_ms": int(time.time() * 1000)}  # fmt: skip
    r = httpx.post(live.url + "/v1/ledger/entries", json=review, timeout=60,
                   headers={"Authorization": f"Bearer {tokens['ledger-writer']}"})  # fmt: skip
    console.print(f"a forged oversight review through the ledger API: {r.status_code} "
                  f"({r.json()['detail'][:72]}…)")  # fmt: skip
    # the operator owns its database: it writes the review and a deployment around the API
    room.log.append(review)
    room.log.append({"type": "release.deployed", "v": 1, "artifact": art["digest"],
                     "kind": "model", "by": "oscar-ops", "rollback": False,
                     "at_ms": int(time.time() * 1000)})  # fmt: skip
    room.log.integrate()
    for a in watcher.run_once().new_alerts:
        console.print(f"  [red]ALERT[/] {a.kind}: " + a.message.replace(art["digest"], "it"))


def _oversight(live: InProcessServer, tokens: dict[str, str], state: Path, log_vkey: str) -> None:
    from cleanroom.audit.accounts import provision
    from cleanroom.audit.puppets import Accounts
    from cleanroom.audit.report import AuditTarget, run_audit, write_report
    from cleanroom.foryou.ranker import RankingConfig
    from cleanroom.ledger.note import parse_verifier
    from cleanroom.oversight import Watcher

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        r = httpx.request(method, live.url + path, headers=headers, timeout=120, **kw)
        r.raise_for_status()
        return r

    room = live.app.state.room
    base = state.parent
    from cleanroom.gate import Principal

    for k in range(20, 40):  # more of the dataset's users open the app
        name = f"viewer-{k}"
        room.principals.add(Principal(name, "user", "users", "user", "US", 0, f"u{k}"))
        tokens[name] = room.principals.issue_token(name)
    _step("16. The oversight body's monitor checks every entry against the rules (and witnesses)")
    # the oversight body pins its own root key (the demo made it for the oversight body)
    watcher = Watcher(live.url + "/log/", parse_verifier(log_vkey), state,
                      api_url=live.url, token=tokens["olga-oversight"],
                      oversight_vkey=room.config.oversight_vkey)  # fmt: skip
    assert watcher.witness is not None
    room.log.integrate()
    deadline = time.monotonic() + 30
    while watcher.witness.status()["cosigned_size"] < room.log.store.latest().size:
        if time.monotonic() > deadline:
            raise RuntimeError("the monitor's witness was never asked to cosign")
        time.sleep(0.1)
    report = watcher.run_once()
    console.print(
        f"monitor: {report.entries_checked:,} entries verified, every access decided again "
        f"under its released policy; {len(report.new_alerts)} alerts; as a witness it cosigned "
        f"the checkpoint of size {watcher.witness.status()['cosigned_size']:,}, consistent "
        f"with what it verified"
    )
    for a in report.new_alerts[:5]:
        console.print(f"  [red]ALERT[/] {a.kind}: {a.message}")

    _lone_operator(live, call, watcher, tokens)

    _step(
        "18. A declared boost: the operator declares it, the oversight body approves, feeds say so"
    )
    feed = call("GET", "/v1/feed", "viewer-20", params={"limit": 30, "seed": "b"}).json()
    video = feed["items"][-1]["video"]
    now = int(time.time() * 1000)
    body = {"video": video, "factor": 3.0, "reason": "public-health campaign",
            "label": "Promoted: public-health campaign", "start_ms": now - 1000,
            "end_ms": now + 3_600_000, "regions": ["US"]}  # fmt: skip
    boost = call("POST", "/v1/boosts", "oscar-ops", json=body).json()
    refused = httpx.post(live.url + f"/v1/boosts/{boost['id']}/review", timeout=30,
                         json={"decision": "approve"},
                         headers={"Authorization": f"Bearer {tokens['oscar-ops']}"})  # fmt: skip
    declared = call("GET", f"/v1/ledger/entries/{boost['declared_entry']}", "olga-oversight")
    signed = sign_boost_review(  # the oversight body's reviewer signs what was declared
        room.data_dir.read_key("reviewer-oversight-reviewer"), boost=boost["id"],
        declared=declared.json()["entry"], decision="approve",
    )  # fmt: skip
    call("POST", f"/v1/boosts/{boost['id']}/review", "olga-oversight",
         json={"decision": "approve", "note": "campaign checked", "envelope": signed})  # fmt: skip
    after = call("GET", "/v1/feed", "viewer-20", params={"limit": 5, "seed": "b2"}).json()
    top = after["items"][0]
    console.print(
        f"{boost['id']} of {video} declared by oscar-ops (entry {boost['ledger_index']}); "
        f"the operator approving its own boost: {refused.status_code}; approved by the oversight "
        f"body; the feed now shows {top['video']} labelled "
        f"[bold]{top.get('boost', {}).get('label')}[/] (why: {top['why'][0]['text']})"
    )
    call("POST", f"/v1/boosts/{boost['id']}/revoke", "oscar-ops", json={"reason": "campaign over"})
    console.print("the campaign ends: oscar-ops revokes the boost (on the record)")

    _step("19. A hidden boost: the operator changes a ranking weight at run time, no release")
    engine = live.app.state.recommender.engine
    approved = engine.config
    creator = feed["items"][20]["creator"]
    rerank = {**approved.raw.get("rerank", {}), "creator_boosts": {creator: 3.0}}
    engine.config = RankingConfig.parse({**approved.raw, "rerank": rerank})
    for n in range(60):
        call("GET", "/v1/feed", f"viewer-{20 + n % 20}", params={"limit": 10, "seed": f"h{n}"})
    engine.config = approved  # and puts it back, hoping nobody noticed
    for n in range(60):
        call("GET", "/v1/feed", f"viewer-{20 + n % 20}", params={"limit": 10, "seed": f"a{n}"})
    room.log.integrate()
    report = watcher.run_once()
    kinds: dict[str, int] = {}
    for a in report.new_alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    console.print(f"monitor: {kinds or 'no alerts'}")
    replay, new = watcher.replay(live.url, tokens["olga-oversight"], sample=500)
    console.print(
        f"replay audit: {replay.replayed} feeds recomputed with the approved ranking, "
        f"[bold red]{replay.mismatched} differ[/] ({replay.mismatch_rate:.0%}); {len(new)} alerts, "
        f"e.g. {new[0].message if new else '-'}"
    )

    _step("20. The audit report: exposure, replay, sock puppets (HTML with plots + JSON)")
    accounts_path = base / "audit-accounts.json"
    accounts_path.write_text(json.dumps(provision(room, 6)))
    doc = run_audit(
        AuditTarget(live.url, tokens["olga-oversight"]), accounts=Accounts.read(accounts_path),
        monitor_state=state, n_personas=6, pages=PUPPET_PAGES, page_size=10, flagged={FLAGGED},
    )  # fmt: skip
    out = write_report(doc, base / "audit.html")
    ex, pup = doc["exposure"], doc["puppets"]
    top = ex["excess_by_creator"][0] if ex["excess_by_creator"] else None
    if top:
        console.print(
            f"exposure: under the unapproved ranking {top['creator']} got "
            f"{top['share_unapproved']:.1%} of impressions vs {top['share_approved']:.1%} "
            f"under the approved one (boosted creator: {creator}); declared boosts "
            f"{ex['declared_boosts']['share']:.2%} of impressions"
        )
    console.print(
        f"replay: undeclared boosting took {doc['replay']['undeclared_boost_share']:.1%} of "
        f"head impressions in the sampled feeds"
    )
    console.print(
        f"sock puppets ({len(pup['personas'])} personas, {pup['window'] * PUPPET_PAGES} videos "
        f"each): "
        f"{pup['mean_exploit_fraction']:.0%} of recommendations match the persona's topic vs "
        f"{pup['mean_baseline_non_personalised']:.0%} non-personalised and "
        f"{pup['mean_baseline_random']:.0%} random; non-personalised feed ignores history: "
        f"{pup['non_personalised_ignores_history']['identical']}"
    )
    firsts = [p["first_flagged"]["videos_before"] for p in pup["personas"] if p["first_flagged"]]
    console.print(
        f"first exposure to the flagged topic {FLAGGED} (a stand-in: kuairec-small has no "
        f"content labels): {len(firsts)} of {len(pup['personas'])} puppets, after "
        f"{sorted(firsts)[len(firsts) // 2] if firsts else '-'} videos (median)"
    )
    console.print(f"report: [green]{base / 'audit.html'}[/] (JSON: {out})")


def _ledger(server, witness, log_dir, monitor_dir, log_vkey, w_signer, m_vkey) -> None:
    from cleanroom.ledger.note import parse_verifier

    _step("21. The log publishes a checkpoint of every decision; both witnesses cosign it")
    size = _ledger_size(log_dir)
    deadline = time.monotonic() + 30
    note = ""
    while time.monotonic() < deadline:
        note = httpx.get(server.url + "/log/checkpoint").text
        cosigned = "oversight.example/w1" in note and "oversight.example/monitor" in note
        if parse_checkpoint(parse_note(note).text).size == size and cosigned:
            break
        time.sleep(0.1)
    console.print(Panel(note.rstrip(), title="GET /log/checkpoint"))

    _step("22. An outside monitor verifies over HTTP with pinned keys and a quorum of 2")
    monitor = Monitor(
        server.url + "/log/",
        parse_verifier(log_vkey),
        monitor_dir,
        witnesses=[w_signer.verifier, m_vkey],
        quorum=2,
    )
    report = monitor.verify()
    console.print(
        f"[green]verified[/]: size {report.size}, root {report.root}, "
        f"{report.entries_checked} entries re-hashed from the entry bundles, "
        f"cosigned by {', '.join(report.cosigners)}"
    )

    _step("23. Anyone checks one entry's inclusion offline (C2SP tlog-proof)")
    proof_text = httpx.get(server.url + "/v1/ledger/proofs/inclusion", params={"index": 42}).text
    entry_body = httpx.get(server.url + "/v1/ledger/entries/42").json()["entry"]
    console.print(f"entry 42: {entry_body['type']} by {entry_body.get('principal')}")
    from cleanroom.ledger.entries import canonical_json

    cp, _ = verify_tlog_proof(
        proof_text, canonical_json(entry_body), parse_verifier(log_vkey), [w_signer.verifier], 1
    )
    console.print(proof_text.split("\n\n")[0])
    console.print(f"[green]entry 42 is included[/] in the cosigned tree of size {cp.size}")

    _step("24. A forked checkpoint (signed with the log key) is refused by the witness")
    fork = MemoryTree()
    for i in range(size + 5):
        fork.append(f"forged {i}".encode())
    dd = DataDir(log_dir)
    forged = sign_note(Checkpoint(ORIGIN, size + 5, fork.root()).text(), [dd.read_key("log")])
    req = AddCheckpointRequest(size, fork.consistency_proof(size), forged)
    resp = httpx.post(witness.url + "/witness/add-checkpoint", content=req.encode())
    console.print(
        f"witness answered [bold]{resp.status_code}[/]: {resp.json().get('detail', resp.text)}"
    )

    _step("25. An insider edits two stored decisions; a full audit by the monitor catches it")
    con = sqlite3.connect(log_dir / "cleanroom.db")
    denied = [
        idx
        for idx, body in con.execute("SELECT idx, body FROM ledger_entries ORDER BY idx")
        if b'"decision":"deny"' in body
    ]
    for idx in denied[:2]:
        (body,) = con.execute("SELECT body FROM ledger_entries WHERE idx = ?", (idx,)).fetchone()
        forged = body.replace(b'"decision":"deny"', b'"decision":"allow"')
        con.execute("UPDATE ledger_entries SET body = ? WHERE idx = ?", (forged, idx))
        console.print(f"entry {idx}: a denied access rewritten as allowed in the database file")
    con.commit()
    con.close()
    try:
        monitor.verify(full=True)
        console.print("[red]tampering was NOT detected")
        raise SystemExit(1)
    except TamperError as exc:
        console.print(f"[bold red]monitor alert[/]: {exc.message}")
    console.rule("[bold green]demo complete")
