"""Bearer-token authentication: who is calling (every non-public route)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cleanroom.gate import Principal
from cleanroom.room import CleanRoom

bearer = HTTPBearer(
    auto_error=False,
    description="an API token from `cleanroom principal token NAME` (crt_…)",
)


def room_of(request: Request) -> CleanRoom:
    return request.app.state.room


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The principal behind the request's bearer token (401 otherwise)."""
    token = credentials.credentials if credentials else None
    return room_of(request).principals.authenticate(token)


Who = Annotated[Principal, Depends(authenticated)]
