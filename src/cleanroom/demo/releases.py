"""Steps 13-15: releases under review, the screening desk and the
infrastructure check."""

from __future__ import annotations

from pathlib import Path

import httpx

from cleanroom.demo.narration import DATASET, console, step
from cleanroom.ledger.serving import ServerProcess
from cleanroom.room.config import DataDir


def releases(dd: DataDir, server: ServerProcess, oversight_token: str) -> None:
    """Issue 5: only reviewed models run. The parent's change is shown to the
    reviewers and cannot load; a legitimate change is approved and deploys;
    the oversight body checks it all from the ledger."""
    from cleanroom.foryou import RankingConfig
    from cleanroom.release import NotApproved
    from cleanroom.release.verify import ledger_entries, replay
    from cleanroom.room import CleanRoom, datasets
    from cleanroom.room.bootstrap import sign_review
    from cleanroom.room.live import load_model_config
    from cleanroom.room.manifests import model_digest, model_manifest
    from cleanroom.room.review import diff_lines

    step("13. The parent submits a model change that quietly boosts one creator")
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


def screening(dd: DataDir, server: ServerProcess, tokens: dict[str, str], base: Path) -> None:
    """Issue 6: data leaves only to screened recipients, of permitted classes,
    on record; the clean room does not run on covered providers."""
    from cleanroom.room import CleanRoom
    from cleanroom.room.infra import InfraRefused, check_infrastructure

    def call(method: str, path: str, who: str, **kw) -> httpx.Response:
        h = {"Authorization": f"Bearer {tokens[who]}"}
        return httpx.request(method, server.url + path, headers=h, timeout=120, **kw)

    step("14. Exports through the egress gate: a listed company is refused, a researcher served")
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

    step("15. The Clean Network check of a deployment manifest")
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
