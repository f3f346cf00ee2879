"""Bearer-token authentication: who is calling (every non-public route)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cleanroom.gate import Principal
from cleanroom.room import CleanRoom
from cleanroom.room.recommender import Recommender
from cleanroom.vault import AccessDenied

bearer = HTTPBearer(
    auto_error=False,
    description="an API token from `cleanroom principal token NAME` (crt_…)",
)


def room_of(request: Request) -> CleanRoom:
    return request.app.state.room


def recommender_of(request: Request) -> Recommender:
    return request.app.state.recommender


def subject_of(who: Principal) -> str:
    """The user id of a user principal (403 for anyone else)."""
    if who.subject is None:
        raise AccessDenied(
            f"{who.name} is not a user: only a user principal has data of its own here",
            hint="use a user's token",
        )
    return who.subject


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The principal behind the request's bearer token (401 otherwise). A token
    verified moments ago is answered on the event loop; others are checked
    against the database in a worker thread."""
    token = credentials.credentials if credentials else None
    principals = room_of(request).principals
    known = principals.recently_verified(token) if token else None
    if known is not None:
        return known
    return await anyio.to_thread.run_sync(principals.authenticate, token)


Who = Annotated[Principal, Depends(authenticated)]
