"""Files that hold key material: written 0600 and durably, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cleanroom.storage.errors import CleanroomError


class SecretFileError(CleanroomError):
    """A key file is missing, already exists, or is accessible to others."""

    status = 500
    title = "Key file error"


def write_secret(
    path: Path, text: str, *, replace: bool = False, error: type[CleanroomError] = SecretFileError
) -> Path:
    """Write ``text`` to ``path`` with mode 0600 and fsync it.

    Without ``replace`` an existing file is never overwritten; with it the new
    content replaces the old atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_suffix(path.suffix + ".tmp") if replace else path
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise error(f"{path} already exists; refusing to overwrite key material") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if replace:
        os.replace(target, path)
    return path


def read_secret(
    path: Path, *, error: type[CleanroomError] = SecretFileError, hint: str | None = None
) -> str:
    """Read a key file, refusing one that group or others can access."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"no key file at {path}", hint=hint) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{path} is accessible to others; run chmod 600 on it")
    return path.read_text()


def api_token(token: str | None, token_file: Path | None, *, required: str = "") -> str | None:
    """The API token a command uses: ``--token`` (or ``CLEANROOM_TOKEN``), else
    the first line of ``--token-file`` (which must be 0600). With ``required``
    (what needs it) a missing token is an error naming the three ways."""
    if token is None and token_file is not None:
        token = read_secret(token_file).strip().splitlines()[0] if token_file else None
    if not token and required:
        raise CleanroomError(f"{required} needs a token: --token, CLEANROOM_TOKEN or --token-file")
    return token or None
