"""What a release of each kind is: the manifest reviewers read and the
digest it is released under (policy sets, model configurations, source
trees, infrastructure manifests)."""

from __future__ import annotations

from typing import Any

from cleanroom.foryou import RankingConfig
from cleanroom.gate.policy import PolicyBundle, load_files
from cleanroom.ledger.hashing import text_files_digest as ledger_text_digest
from cleanroom.release import (
    ReleaseError,
)
from cleanroom.release.digests import hashes_digest
from cleanroom.screen.infra import parse_manifest


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
