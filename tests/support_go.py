"""Running the Go reference programs of the interop tests (Debian packages
golang-go and golang-golang-x-mod-dev; the tests skip without them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOPATH = Path("/usr/share/gocode")

needs_go = pytest.mark.skipif(
    shutil.which("go") is None or not (GOPATH / "src/golang.org/x/mod/sumdb").is_dir(),
    reason="Go and golang.org/x/mod are not installed (apt install golang-go "
    "golang-golang-x-mod-dev)",
)


def run_go(program: Path, case: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``go run program`` with ``case`` as JSON on stdin (GOPATH mode)."""
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(tmp_path / "gocache"),
    }
    return subprocess.run(
        ["go", "run", str(program)],
        input=json.dumps(case),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
