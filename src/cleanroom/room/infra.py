"""The infrastructure ("Clean Network") check: the deployment's manifest
screened against the restricted-party lists before the server starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cleanroom.room import CleanRoom
from cleanroom.room.manifests import text_files_digest
from cleanroom.screen.errors import ManifestError
from cleanroom.screen.infra import Manifest, parse_manifest
from cleanroom.screen.infra import check as infra_check
from cleanroom.storage.errors import CleanroomError


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
