"""The console under ``/console``: the transparency center and ledger browser
for anyone, and pages for the oversight body, the operator, users and
researchers once signed in with a token. Server-rendered (Jinja2), one
stylesheet and one script bundled with the package: it works offline.

A console is a client, not a back door: each page calls the room functions
the API routes call, with the signed-in principal, so the gate decides and
records exactly what it would for the same request over the API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from cleanroom.api.console import oversight, people, public
from cleanroom.api.console.web import (
    COOKIE,
    HERE,
    PREFIX,
    Posted,
    error_page,
    foreign_origin,
    page,
    redirect,
    sessions,
)
from cleanroom.gate.principals import Unauthenticated
from cleanroom.gate.sessions import SESSION_TTL

auth = APIRouter(include_in_schema=False)


def home_of(who: object) -> str:
    org, kind = getattr(who, "org", ""), getattr(who, "kind", "")
    if kind == "user":
        return "/me"
    return {"oversight": "/oversight", "operator": "/operator", "researcher": "/research"}.get(
        org, ""
    )


@auth.get("/console/login")
def login_form(request: Request, next: str = "") -> Response:
    return page(request, "login.html", next=next)


@auth.post("/console/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Check the token once and open a session bound to it (a sign-in posted
    from another site is refused: no one is signed in behind their back)."""
    foreign = foreign_origin(request)
    if foreign:
        message = f"a sign-in posted from another site ({foreign}) is refused"
        return page(request, "login.html", status=403, message=message)
    try:
        cookie, who = sessions(request).open(token.strip())
    except Unauthenticated as e:
        return page(request, "login.html", status=401, message=e.message, next=next)
    target = next if next.startswith(PREFIX + "/") and "//" not in next else PREFIX + home_of(who)
    resp = redirect("")
    resp.headers["location"] = target
    resp.set_cookie(
        COOKIE, cookie, max_age=int(SESSION_TTL.total_seconds()), path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return resp


@auth.post("/console/logout")
def logout(request: Request, _: Posted) -> Response:
    sessions(request).close(request.cookies.get(COOKIE))
    resp = redirect("")
    resp.delete_cookie(COOKIE, path="/")
    return resp


def install(app: FastAPI) -> None:
    """Add the console's pages and its bundled assets to ``app``."""
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(auth)
    app.include_router(public.router)
    app.include_router(oversight.router)
    app.include_router(people.router)


__all__ = ["PREFIX", "error_page", "install"]
