"""`cleanroom release …`: submit artifacts, read their diff, review and approve
them with a reviewer's own key, deploy, roll back, and verify everything from
the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cleanroom.cli.common import open_room, read_text
from cleanroom.cli.help import group
from cleanroom.ledger.search import time_ms_of
from cleanroom.release.registry import KINDS
from cleanroom.storage.errors import CleanroomError

release_app = group(
    help="Trusted releases: artifacts, reviews, approvals, deployments. Example: cleanroom "
    "release list, then cleanroom release diff DIGEST"
)
reviewer_app = group(
    help="Reviewers and their public keys. Example: cleanroom release reviewer keygen NAME, "
    "then cleanroom release reviewer add NAME"
)
release_app.add_typer(reviewer_app, name="reviewer")


def _content(kind: str, path: Path) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of what PATH holds, checked for its kind."""
    from cleanroom.foryou import RankingConfig
    from cleanroom.gate.policy import load_dir
    from cleanroom.release.digests import file_hashes, hashes_digest, tree_files
    from cleanroom.room.manifests import model_digest, model_manifest, policy_manifest

    if kind == "policy":
        bundle = load_dir(path)  # parses and validates against the schema
        return bundle.version, policy_manifest(bundle)
    if kind == "model":
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CleanroomError(f"cannot read the model configuration {path}: {e}") from None
        manifest = model_manifest(RankingConfig.parse(doc))
        return model_digest(manifest), manifest
    if kind == "infra":
        from cleanroom.room.infra import infra_manifest

        return infra_manifest(path)
    hashes = file_hashes(tree_files(path))
    return hashes_digest(hashes), {"files": hashes}


@release_app.command("submit")
def submit(
    kind: Annotated[str, typer.Argument(help="source, model, policy or infra")],
    path: Annotated[
        Path, typer.Argument(help="a source tree, a ranking.json, or a folder of .cedar files")
    ],
    by: Annotated[str, typer.Option(help="the submitting principal")],
    name: Annotated[str | None, typer.Option(help="a name for reviewers")] = None,
) -> None:
    """Submit an artifact for review; prints its digest (the last line)."""
    if kind not in KINDS:
        raise CleanroomError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    digest, manifest = _content(kind, path)
    with open_room() as room:
        who = room.principals.get(by)
        art = room.releases.submit(
            kind, name or path.name, digest, manifest, submitted_by=who.name, org=who.org
        )
    typer.echo(f"submitted {art.kind} {art.name!r} by {art.submitted_by} ({art.org})", err=True)
    typer.echo(art.digest)


@release_app.command("diff")
def diff(
    digest: str,
    against: Annotated[str | None, typer.Option(help="another artifact (default: live)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the lines as a JSON list")] = False,
) -> None:
    """Show what an artifact changes against the live release of its kind (for
    a policy set, also whether the policy invariants hold)."""
    from cleanroom.room.review import diff_lines

    with open_room() as room:
        lines = diff_lines(room, digest, against)
    typer.echo(json.dumps(lines, indent=2) if as_json else "\n".join(lines))


@release_app.command("review")
def review_cmd(
    digest: str,
    key: Annotated[Path, typer.Option(help="the reviewer's private key file (signed-note)")],
    decision: Annotated[str, typer.Option(help="approve or reject")] = "approve",
    comment: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Sign a review of an artifact with your own key and record it."""
    from cleanroom.ledger.note import parse_signer
    from cleanroom.room.bootstrap import sign_review

    try:
        signer = parse_signer(key.read_text().strip())
    except OSError as e:
        raise CleanroomError(f"cannot read the key {key}: {e.strerror}") from None
    with open_room() as room:
        art = room.releases.get(digest)
        known = room.releases.reviewer(signer.name)
        if known is None:
            raise CleanroomError(f"{signer.name!r} is not a registered reviewer")
        env = sign_review(signer, art, org=known[0], decision=decision, comment=comment)
        verdict = room.releases.review(digest, env)
    typer.echo(json.dumps(verdict.to_dict()))


@release_app.command("approve")
def approve(
    digest: str,
    key: Annotated[Path, typer.Option(help="the reviewer's private key file (signed-note)")],
    comment: Annotated[str, typer.Option(help="why")] = "",
) -> None:
    """Approve an artifact (a review with decision approve)."""
    review_cmd(digest, key, "approve", comment)


@release_app.command("deploy")
def deploy(digest: str, by: Annotated[str, typer.Option(help="the deploying principal")]) -> None:
    """Make an approved artifact live (refused, on the record, if not approved)."""
    with open_room() as room:
        d = room.releases.deploy(digest, by=by)
    typer.echo(f"deployed {d.kind} {d.artifact} (ledger index {d.ledger_index})")


@release_app.command("rollback")
def rollback(kind: str, by: Annotated[str, typer.Option(help="the deploying principal")]) -> None:
    """Deploy again the approved release that was live before the current one."""
    with open_room() as room:
        d = room.releases.rollback(kind, by=by)
    typer.echo(f"rolled back {d.kind} to {d.artifact} (ledger index {d.ledger_index})")


@release_app.command("verify")
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Check every release entry of the ledger with the reviewers' public keys:
    reviews, verdicts, and that every deployment was approved. Exit code 1 when
    it finds a problem."""
    from cleanroom.release.verify import ledger_entries, replay

    with open_room() as room:
        entries = ledger_entries(room.log.store)
    view = replay(entries, None)
    live = {k: view.live(k) for k in KINDS}
    report = {
        "reviewers": {n: org for n, (org, _) in view.reviewers.items()},
        "artifacts": len(view.artifacts),
        "live": {k: (d["artifact"] if d else None) for k, d in live.items()},
        "problems": [{"index": i, "problem": p} for i, p in view.problems],
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(f"reviewers: {', '.join(f'{n} ({o})' for n, o in report['reviewers'].items())}")
        for k, d in report["live"].items():
            typer.echo(f"live {k}: {d or '-'}")
        for p in report["problems"]:
            typer.echo(f"problem at entry {p['index']}: {p['problem']}")
    if view.problems:
        typer.echo(f"{len(view.problems)} release problem(s) on the ledger", err=True)
        raise typer.Exit(1)


@release_app.command("list")
def list_cmd(
    kind: Annotated[str | None, typer.Option(help="source, model, policy or infra")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Artifacts with their verdict and whether they are live."""
    with open_room() as room:
        reg = room.releases
        rows = []
        for art in reg.artifacts(kind):
            live = reg.live(art.kind)
            rows.append(
                {
                    **art.to_dict(),
                    "verdict": reg.verdict(art.digest).to_dict(),
                    "live": bool(live and live.artifact == art.digest),
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "live" if r["live"] else "approved" if r["verdict"]["approved"] else "pending"
        typer.echo(f"{r['kind']:7} {state:8} {r['digest']}  {r['name']} ({r['submitted_by']})")


@reviewer_app.command("add")
def reviewer_add(
    name: str,
    org: Annotated[str, typer.Option(help="operator or oversight")],
    vkey: Annotated[str, typer.Option(help="the reviewer's public key (signed-note vkey)")],
    by: Annotated[str, typer.Option(help="who registers them")],
    statement: Annotated[
        Path | None,
        typer.Option(help="for org oversight: the oversight root's statement adding them"),
    ] = None,
) -> None:
    """Register the public key of principal NAME as a reviewer (their private
    key stays with them). A reviewer of the oversight body needs the oversight
    root's statement (`cleanroom oversight grant reviewer`)."""
    doc = None if statement is None else read_text(statement, "statement")
    with open_room() as room:
        who = room.principals.get(name)
        if who.org != org:
            raise CleanroomError(f"{name} is a principal of {who.org!r}, not of {org!r}")
        index = room.releases.add_reviewer(
            name, org, vkey, added_by=room.principals.get(by).name, statement=doc
        )
    typer.echo(f"reviewer {name} ({org}) registered at ledger index {index}")


@reviewer_app.command("remove")
def reviewer_remove(
    name: str,
    by: Annotated[str, typer.Option(help="who takes them off")],
    statement: Annotated[
        Path | None,
        typer.Option(help="for org oversight: the oversight root's statement removing them"),
    ] = None,
) -> None:
    """Take reviewer NAME's key off the register (their earlier reviews stand)."""
    doc = None if statement is None else read_text(statement, "statement")
    with open_room() as room:
        index = room.releases.remove_reviewer(name, by=room.principals.get(by).name, statement=doc)
    typer.echo(f"reviewer {name} removed at ledger index {index}")


@reviewer_app.command("keygen")
def reviewer_keygen(
    name: str, out: Annotated[Path, typer.Option(help="where to write the private key")]
) -> None:
    """Create a reviewer key pair: the private key into OUT (mode 600), the
    public key (to register) on standard output."""
    from cleanroom.ledger.note import generate_signer
    from cleanroom.storage.secrets import write_secret

    s = generate_signer(name)
    write_secret(out, s.skey + "\n", error=CleanroomError)
    typer.echo(s.verifier.vkey)


@release_app.command("models")
def models_cmd(
    at: Annotated[
        str | None,
        typer.Option(help="a time (ISO 8601 or ms since the epoch): the model live then"),
    ] = None,
    feed: Annotated[str | None, typer.Option(help="a feed id: the model that served it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The model registry, from the ledger: versions in the order they went
    live, their approved configuration and verified lineage."""

    from cleanroom.release.models import live_at, served_feed, timeline
    from cleanroom.release.verify import ledger_entries
    from cleanroom.room.provenance import builder_verifier

    with open_room() as room:
        entries = ledger_entries(room.log.store)
        builder = builder_verifier(room)
    models = timeline(entries, builder=builder)
    if feed is not None:
        served = served_feed(entries, feed)
        if not served:
            raise CleanroomError(f"no feed {feed!r} is committed on the ledger")
        models = [m for m in models if m["version"] == served[0]["model_version"]]
    if at is not None:
        hit = live_at(models, time_ms_of(at, "--at"))
        models = [hit] if hit else []
    if as_json:
        typer.echo(json.dumps(models, indent=2))
        return
    for m in models:
        rel = m["config_release"] or {}
        lin = m["lineage"] or {}
        approved = ", ".join(rel.get("approved_by", [])) or "nobody"
        typer.echo(
            f"{m['version']}  {m['how']:18} from {m['live_from_ms']}  "
            f"config {rel.get('name', '?')} "
            f"(approved by {approved})  "
            f"records {lin.get('jurisdictions', {})}  feeds {m['feeds_served']}"
        )


@release_app.command("evaluate")
def evaluate_cmd(
    digest: str,
    by: Annotated[str, typer.Option(help="who runs the evaluation")],
    split: Annotated[str, typer.Option(help="valid or test")] = "valid",
    as_json: Annotated[bool, typer.Option("--json", help="the metrics as JSON")] = False,
) -> None:
    """A model configuration's metrics on the fixed evaluation set (bundled
    kuairec-small, SIGformer protocol) beside the live one's; recorded on the
    ledger (release.evaluated)."""
    from cleanroom.room.review import evaluate_model_release

    if split not in ("valid", "test"):
        raise CleanroomError(f"--split is valid or test, got {split!r}")
    with open_room() as room:
        who = room.principals.get(by).name
        live = room.releases.live("model")
        rows = {"candidate": evaluate_model_release(room, digest, split=split, by=who)}
        if live is not None and live.artifact != digest:
            known = room.releases.evaluation(live.artifact)
            rows["live"] = (
                known
                if known and known.get("split") == split
                else evaluate_model_release(room, live.artifact, split=split, by=who)
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for name, m in rows.items():
        typer.echo(
            f"{name:9} R@20 {m['recall@20']:.4f}  NDCG@20 {m['ndcg@20']:.4f}  "
            f"P@20 {m['precision@20']:.4f}  ({m['dataset']}, {m['split']})"
        )
