"""What the clean room runs: the live, approved policy set of the gate and
model configuration of the recommender, loaded through the deploy check
(``release.deploy.load_live``); and the bootstrap of the first releases.

Bootstrapping is on the record: a clean room with no release history creates
its first two reviewers (one of the operator, one of the oversight body, their
keys in the data directory's key folder — in production each reviewer keeps
their own key and registers only the public half), submits the shipped policy
set and model configuration, approves both with both keys and deploys them.
Every step is a ledger entry anyone can verify with the reviewers' public keys
(``cleanroom release verify``)."""

from __future__ import annotations

import difflib
import functools
import json
import time
from pathlib import Path
from typing import Any

from cleanroom.config import DataDir
from cleanroom.foryou import RankingConfig
from cleanroom.gate import Principal
from cleanroom.gate.gate import decision_changes
from cleanroom.gate.policy import PolicyBundle, load_files, shipped
from cleanroom.ledger.authority import sign_root_statement
from cleanroom.ledger.hashing import text_files_digest as ledger_text_digest
from cleanroom.ledger.note import Signer, Verifier, generate_signer
from cleanroom.release import (
    INTOTO_PAYLOAD_TYPE,
    PROVENANCE_TYPE,
    REVIEW_TYPE,
    NotApproved,
    ReleaseError,
    dsse,
    provenance,
)
from cleanroom.release.deploy import Loaded, load_live
from cleanroom.release.digests import files_digest, hashes_digest, tree_files
from cleanroom.release.intoto import encode, review, statement, subject
from cleanroom.release.registry import Artifact
from cleanroom.room import CleanRoom
from cleanroom.screen.errors import ManifestError
from cleanroom.screen.infra import Manifest, parse_manifest
from cleanroom.screen.infra import check as infra_check
from cleanroom.storage.errors import CleanroomError

BOOTSTRAP_REVIEWERS = (("operator-reviewer", "operator"), ("oversight-reviewer", "oversight"))


def policy_manifest(bundle: PolicyBundle) -> dict[str, Any]:
    return {"files": dict(sorted(bundle.files.items()))}


def text_files_digest(manifest: dict[str, Any]) -> str:
    """The digest of a manifest of files given by their text (policy sets,
    infrastructure manifests)."""
    return ledger_text_digest(manifest["files"])


def model_manifest(cfg: RankingConfig) -> dict[str, Any]:
    return {"config": cfg.raw}


def model_digest(manifest: dict[str, Any]) -> str:
    return RankingConfig.parse(manifest["config"]).digest()


def source_digest(manifest: dict[str, Any]) -> str:
    return hashes_digest(manifest["files"])


DIGESTS = {
    "policy": text_files_digest,
    "model": model_digest,
    "source": source_digest,
    "infra": text_files_digest,
}


def check_manifest(kind: str, manifest: Any) -> str:
    """The digest of an artifact from what reviewers will read, after checking
    it is what its kind must be: a policy set that validates against the
    schema, a ranking configuration that parses, a source manifest of file
    hashes."""
    if kind not in DIGESTS:
        raise ReleaseError(f"kind must be one of {', '.join(DIGESTS)}, got {kind!r}")
    field = "config" if kind == "model" else "files"
    if not isinstance(manifest, dict) or not isinstance(manifest.get(field), dict):
        raise ReleaseError(f"a {kind} manifest needs a {field!r} object")
    if kind in ("policy", "infra"):
        files = manifest["files"]
        if not all(isinstance(t, str) for t in files.values()):
            raise ReleaseError(f"a {kind} manifest maps file names to their text")
        if kind == "policy":
            return load_files(files).version
        if len(files) != 1:
            raise ReleaseError("an infra release is one manifest file")
        name, text = next(iter(files.items()))
        parse_manifest(text, name)  # a manifest that does not parse is no release
    return DIGESTS[kind](manifest)


def reviewer_key(dd: DataDir, name: str) -> Signer:
    return dd.read_key(f"reviewer-{name}")


def sign_review(
    key: Signer, art: Artifact, *, org: str, decision: str = "approve", comment: str = ""
) -> dict[str, Any]:
    """A reviewer's signed review of an artifact (a DSSE envelope)."""
    pred = review(
        reviewer=key.name,
        org=org,
        decision=decision,
        kind=art.kind,
        comment=comment,
        at_ms=int(time.time() * 1000),
    )
    stmt = statement([subject(art.name, art.digest)], REVIEW_TYPE, pred)
    return dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [key])


ROOT_KEY = "oversight-root"


def dev_oversight_root(room: CleanRoom, dd: DataDir) -> Signer | None:
    """The oversight root key kept in the data directory, if this clean room
    has one. ``cleanroom init`` without ``--oversight-vkey`` (the demo, a
    developer's machine) makes one there and pins it; a clean room whose
    oversight body gave its own public key has none."""
    cfg = room.config
    if cfg.oversight_vkey is None:  # made and put on the record at once
        signer = generate_signer(ROOT_KEY)
        dd.write_key(ROOT_KEY, signer)
        cfg.oversight_vkey = signer.verifier.vkey
        dd.save(cfg)
        room.pin_oversight_root(cfg.oversight_vkey, by="init")
    if not dd.has_key(ROOT_KEY):
        return None
    signer = dd.read_key(ROOT_KEY)
    return signer if signer.verifier.vkey == cfg.oversight_vkey else None


def bootstrap(room: CleanRoom, dd: DataDir) -> bool:
    """Create the first reviewers and releases if this clean room has none
    (returns whether it did). Needs the log started.

    The oversight body's root key is put on the record first. With a root key
    in the data directory (development), its statement makes
    ``oversight-reviewer`` an oversight reviewer and both first releases are
    approved and deployed. Without it, only the operator's reviewer approves:
    the first policy set and model configuration wait for the oversight body
    (it registers its reviewer with a root statement and reviews them) and the
    server starts once they are deployed."""
    reg = room.releases
    if reg.reviewers() or reg.artifacts():
        return False
    pinned = room.config.oversight_vkey  # given at init: on the record now
    root = dev_oversight_root(room, dd)
    if pinned is not None:
        room.pin_oversight_root(pinned, by="init")
    keys = {}
    existing = {p.name for p, _ in room.principals.list()}
    juris = room.config.site.jurisdiction
    for name, org in BOOTSTRAP_REVIEWERS:
        if org == "oversight" and root is None:
            continue  # the oversight body registers its own reviewers
        if not dd.has_key(f"reviewer-{name}"):
            dd.write_key(f"reviewer-{name}", generate_signer(name))
        keys[name] = (reviewer_key(dd, name), org)
        vkey = keys[name][0].verifier.vkey
        principal = Principal(name, "person", org, "reviewer", juris, 1)
        as_reviewer = None
        if root is not None and org == "oversight":  # the development root speaks
            as_reviewer = sign_root_statement(
                root, origin=room.config.origin, action="add", subject="reviewer", name=name,
                vkey=vkey,
            )  # fmt: skip
            if name not in existing:
                add_oversight_principal(room, dd, principal)
        elif name not in existing:
            room.add_principal(principal)
        reg.add_reviewer(name, org, vkey, added_by="init", statement=as_reviewer)
    bundle = shipped()
    cfg = RankingConfig.shipped()
    arts = [
        reg.submit(
            "policy",
            "shipped policy set",
            bundle.version,
            policy_manifest(bundle),
            submitted_by="init",
            org="operator",
        ),
        reg.submit(
            "model",
            "shipped model configuration",
            cfg.digest(),
            model_manifest(cfg),
            submitted_by="init",
            org="operator",
        ),
    ]
    for art in arts:
        for key, org in keys.values():
            reg.review(art.digest, sign_review(key, art, org=org, comment="bootstrap"))
        if reg.verdict(art.digest).approved:
            reg.deploy(art.digest, by="init")
    return True


def load_policy(room: CleanRoom) -> Loaded:
    """Load the live approved policy set into the gate (deploy check first)."""
    loaded = load_live(room.releases, room.log, "policy", text_files_digest)
    room.gate.set_policy(load_files(loaded.content["files"]))
    return loaded


@functools.cache
def running_source() -> str:
    """The digest of the code this process runs (the ``cleanroom`` package
    tree, the same digest a source release of it has)."""
    return files_digest(tree_files(Path(__file__).parent))


def builder_key(room: CleanRoom) -> Signer:
    """The clean room's builder key: it signs the provenance of every model it
    trains (made on first use, in the data directory's key folder)."""
    dd = room.data_dir
    if dd is None:
        raise ReleaseError("this clean room has no data directory for its builder key")
    if not dd.has_key("builder"):
        dd.write_key("builder", generate_signer(f"{room.config.origin}/builder"))
    return dd.read_key("builder")


def builder_verifier(room: CleanRoom) -> Verifier | None:
    """The builder's public key, if this clean room has trained a model yet
    (reading never creates the key)."""
    dd = room.data_dir
    if dd is None or not dd.has_key("builder"):
        return None
    return dd.read_key("builder").verifier


def attest_model(
    room: CleanRoom,
    *,
    model_version: str,
    config_digest: str,
    snapshot: str,
    jurisdictions: dict[str, int],
    read_decision: int,
    started_ms: int,
    finished_ms: int,
) -> dict[str, Any]:
    """The SLSA provenance of a trained model, signed by the builder: built by
    this clean room from the approved configuration and a training snapshot
    read through the gate (its lineage: how many records, of which
    jurisdiction, under which decision)."""
    key = builder_key(room)
    pred = provenance(
        builder=f"https://{room.config.origin}/builder",
        build_type="https://cleanroom.dev/build/recommender-model/v1",
        external={
            "source": running_source(),
            "ranking_config": config_digest,
            "lineage": {
                "snapshot": snapshot,
                "records": sum(jurisdictions.values()),
                "jurisdictions": jurisdictions,
                "read_decision": read_decision,
                "purpose": "recommendation",
            },
        },
        materials=[
            ("source", running_source()),
            ("ranking-config", config_digest),
            ("training-snapshot", snapshot),
        ],
        started_ms=started_ms,
        finished_ms=finished_ms,
        invocation=model_version,
    )
    stmt = statement([subject("recommender-model", model_version)], PROVENANCE_TYPE, pred)
    return dsse.sign(encode(stmt), INTOTO_PAYLOAD_TYPE, [key])


def check_lineage(room: CleanRoom, jurisdictions: dict[str, int], model_version: str) -> None:
    """Refuse (on the record) a model trained on any record of another
    jurisdiction than this site's."""
    home = room.config.site.jurisdiction
    foreign = {j: n for j, n in jurisdictions.items() if j != home and n}
    if foreign:
        why = (
            f"model {model_version} was trained on records of another jurisdiction "
            f"({', '.join(f'{j}: {n}' for j, n in sorted(foreign.items()))}); only {home} may be"
        )
        refused = NotApproved(
            why,
            hint="train only on data read through the gate for this site",
            artifact=model_version,
        )
        room.releases.refuse("model", refused, by="deploy-check")
        raise refused


def load_model_config(room: CleanRoom) -> tuple[RankingConfig, Loaded]:
    """The live approved model configuration (deploy check first)."""
    loaded = load_live(room.releases, room.log, "model", model_digest)
    return RankingConfig.parse(loaded.content["config"]), loaded


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two JSON documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _changed(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}: {json.dumps(old)} -> {json.dumps(new)}"]


def diff_lines(room: CleanRoom, digest: str, against: str | None = None) -> list[str]:
    """What reviewers read: the change from the live release of the same kind
    (or ``against``): changed configuration values, or a unified diff of files."""
    reg = room.releases
    art = reg.get(digest)
    live = reg.live(art.kind)
    base_digest = against or (live.artifact if live else None)
    base = reg.get(base_digest) if base_digest else None
    head = f"{art.kind} {art.name!r} {digest} by {art.submitted_by} ({art.org})"
    out = [head, f"against: {base.name!r} {base.digest}" if base else "against: nothing"]
    old = base.manifest if base else {}
    if art.kind == "model":
        changes = _changed(old.get("config", {}), art.manifest["config"])
        out += [f"  {c}" for c in changes] or ["  no change in the configuration"]
    else:
        before, after = old.get("files", {}), art.manifest["files"]
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            if a == b:
                continue
            if art.kind == "source":
                what = "added" if a is None else "removed" if b is None else "changed"
                out.append(f"  {what}: {name}")
                continue
            out += list(
                difflib.unified_diff(
                    (a or "").splitlines(),
                    (b or "").splitlines(),
                    f"a/{name}",
                    f"b/{name}",
                    lineterm="",
                )
            )
    if art.kind == "policy" and base is not None:
        out += policy_decision_lines(base.manifest["files"], art.manifest["files"])
    if art.kind == "policy":
        out += policy_invariant_lines(art.manifest["files"])
    v = reg.verdict(digest)
    out.append("approved" if v.approved else f"not approved: {v.missing}")
    return out


@functools.lru_cache(maxsize=8)
def _invariants(files: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    from cleanroom.gate.analysis import analyse, summary

    return tuple(summary(analyse(load_files(dict(files)))))


def policy_invariant_lines(files: dict[str, str]) -> list[str]:
    """The policy set's invariants over every request the gate can make
    (``cleanroom.gate.analysis``): what a reviewer must see before approving."""
    return ["invariants (exhaustive over the schema's domains):"] + [
        f"  {line}" for line in _invariants(tuple(sorted(files.items())))
    ]


def policy_decision_lines(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Which decisions of the fixed request set change (grouped over purposes)."""
    changes = decision_changes(load_files(before), load_files(after))
    groups: dict[tuple[str, ...], list[str]] = {}
    for c in changes:
        key = (c["before"], c["after"], c["principal"], c["action"], c["resource"])
        groups.setdefault(key, []).append(c["purpose"] or "(none)")
    out = [f"decisions that change on the fixed request set: {len(changes)}"]
    for (b, a, who, action, resource), purposes in sorted(groups.items()):
        out.append(f"  {b} -> {a}: {who} {action} {resource} (purposes: {', '.join(purposes)})")
    return out


EVAL_DATASET = "kuairec-small"


def evaluate_model_release(
    room: CleanRoom, digest: str, *, split: str = "valid", by: str
) -> dict[str, Any]:
    """A model configuration's metrics on the fixed evaluation set (the bundled
    kuairec-small, SIGformer protocol, ``split``), recorded on the ledger."""
    from cleanroom.foryou.evaluate import bundled, evaluate_engine

    art = room.releases.get(digest)
    if art.kind != "model":
        raise ReleaseError("only a model configuration can be evaluated")
    cfg = RankingConfig.parse(art.manifest["config"])
    scores, info = evaluate_engine(bundled(EVAL_DATASET), cfg, split)
    metrics = {
        "dataset": EVAL_DATASET,
        "split": split,
        **{k: round(float(v), 5) for k, v in scores.items()},
        "train_seconds": info["train_seconds"],
    }
    room.releases.record_evaluation(digest, metrics, by=by)
    return metrics


# -- the infrastructure ("Clean Network") check ------------------------------------


class InfraRefused(CleanroomError):
    """The deployment runs on a provider the screening flags, without an
    approved exception: the server does not start."""

    status = 503
    title = "Infrastructure not cleared"

    def __init__(self, message: str, report: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.report = report


def infra_manifest(path: Path) -> tuple[str, dict[str, Any]]:
    """(digest, release manifest) of an infrastructure manifest file."""
    digest, manifest, _ = _read_manifest(path)
    return digest, manifest


def _read_manifest(path: Path) -> tuple[str, dict[str, Any], Manifest]:
    """An infrastructure manifest file: its release digest and manifest, parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read manifest {path}: {e}") from None
    parsed = parse_manifest(text, path.name)
    manifest = {"files": {path.name: text}}
    return text_files_digest(manifest), manifest, parsed


def check_infrastructure(room: CleanRoom, path: Path | None = None) -> dict[str, Any] | None:
    """Screen the deployment's manifest (``screening.infra_manifest`` of the
    configuration, or ``path``) and record the result. Raises InfraRefused on a
    flagged provider without an exception, or with exceptions in a manifest
    that is not an approved ``infra`` release. None when there is no manifest."""
    if path is None:
        configured = room.config.screening.infra_manifest
        if not configured:
            return None
        path = Path(configured)
        if not path.is_absolute() and room.data_dir is not None:
            path = room.data_dir.path / path
    digest, _, parsed = _read_manifest(path)
    report = infra_check(parsed, room.screening.screener())
    approved = False
    if report.flagged and not report.blocking:
        art = room.releases.get(digest, missing_ok=True)
        if art is not None and art.kind == "infra":
            approved = room.releases.verdict(digest).approved
    ok = not report.flagged or (not report.blocking and approved)
    out = report.as_json()
    out["manifest_digest"] = digest
    out["exceptions_approved"] = approved
    out["ok"] = ok
    entry = room.log.append(
        {
            "type": "screen.infra",
            "v": 1,
            "time_ms": int(time.time() * 1000),
            "deployment": report.manifest.deployment,
            "manifest": digest,
            "list_versions": report.list_versions,
            "providers": len(report.findings),
            "flagged": [
                {
                    "name": f.provider.name,
                    "kind": f.provider.kind,
                    "lists": f.lists,
                    "reasons": f.reasons,
                    "exception": f.exception,
                }
                for f in report.flagged
            ],
            "exceptions_approved": approved,
            "ok": ok,
        }
    )
    out["ledger_index"] = entry
    if not ok:
        names = ", ".join(f.provider.name for f in report.flagged)
        why = (
            "no approved exception"
            if report.blocking
            else f"its exceptions are not an approved infra release ({digest})"
        )
        raise InfraRefused(
            f"the deployment runs on flagged providers ({names}): {why}; refused (entry {entry})",
            out,
            hint="cleanroom screen infra MANIFEST shows why",
        )
    return out


def add_oversight_principal(room: CleanRoom, dd: DataDir, principal: Principal) -> Principal:
    """Register a principal of the oversight body with a statement of the
    development root key in the data directory (the demo and tests play the
    oversight body; in production it signs with `cleanroom oversight grant`)."""
    root = dev_oversight_root(room, dd)
    if root is None:
        raise ReleaseError(
            "this clean room's oversight root key is not in its data directory",
            hint="the oversight body signs the statement: cleanroom oversight grant principal",
        )
    p = principal
    statement = sign_root_statement(
        root, origin=room.config.origin, action="add", subject="principal", name=p.name,
        kind=p.kind, role=p.role, jurisdiction=p.jurisdiction,
    )  # fmt: skip
    return room.add_principal(p, statement)
