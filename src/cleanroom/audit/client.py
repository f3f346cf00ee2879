"""Calling a clean room's API from outside (the CLI's remote commands, the
oversight body's audits): JSON back, or one clear error."""

from __future__ import annotations

from typing import Any

import httpx

from cleanroom.storage.errors import CleanroomError


class ApiError(CleanroomError):
    """The API could not be reached (``http_status`` None) or answered with an error."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


def api_call(
    client: httpx.Client | None, method: str, api: str, path: str, token: str, **kw: Any
) -> Any:
    """``method`` ``api + path`` with the bearer ``token``; the JSON answer, or
    an :class:`ApiError` saying what went wrong (the problem's detail)."""
    api = api.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if client is None:
            r = httpx.request(method, api + path, headers=headers, timeout=30, **kw)
        else:
            r = client.request(method, api + path, headers=headers, **kw)
    except httpx.HTTPError as e:
        raise ApiError(f"cannot reach {api}: {e}") from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise ApiError(f"{method} {api}{path} answered {r.status_code}: {detail}", r.status_code)
    return r.json()
