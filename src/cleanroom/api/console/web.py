"""What every console page shares: templates, the signed-in principal, CSRF.

A console page is a client of the clean room like any other: it calls the
same room functions the API routes call, with the principal of the session,
so the gate decides (and records) exactly what it would for the API. Errors
render as a page that says what was refused and why (``error.html``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cleanroom.audit.report import number, short_digest
from cleanroom.errors import CleanroomError
from cleanroom.gate import Principal
from cleanroom.gate.principals import Unauthenticated
from cleanroom.gate.sessions import Sessions, check_csrf, csrf_token

HERE = Path(__file__).parent
COOKIE = "cleanroom_session"
PREFIX = "/console"


class BadForm(CleanroomError):
    """A console form that cannot be acted on (a missing or forged CSRF token)."""

    status = 403
    title = "Form refused"


class InvalidForm(CleanroomError):
    """A console form whose values are not what the action takes (nothing is done)."""

    status = 422
    title = "Invalid form"


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(when=_when, short=short_digest, num=number)
env.globals["prefix"] = PREFIX  # (macros are imported without the page's context)


def sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions  # (made with the room, at start-up)


def signed_in(request: Request) -> Principal | None:
    """The principal of the request's session, or None (not signed in)."""
    try:
        return sessions(request).principal(request.cookies.get(COOKIE))
    except Unauthenticated:
        return None


def require_principal(request: Request) -> Principal:
    """The signed-in principal (:class:`Unauthenticated` renders the sign-in page)."""
    return sessions(request).principal(request.cookies.get(COOKIE))


async def form_of(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token is checked against the session
    and its Origin (if sent) is this site."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(COOKIE, "")
    if not check_csrf(cookie, fields.get("csrf")):
        raise BadForm(
            "this form's CSRF token does not belong to your session",
            hint="reload the page and submit the form again",
        )
    foreign = foreign_origin(request)
    if foreign:
        raise BadForm(f"a form posted from another site ({foreign}) is refused")
    return fields


Posted = Annotated[dict[str, str], Depends(form_of)]
"""A posted form, its CSRF token and origin checked: as a dependency, read on
the event loop, so the route itself can be a plain function that FastAPI runs
in a worker thread (the gate, the vault and the ledger block)."""


def foreign_origin(request: Request) -> str | None:
    """The Origin a request names if it is not this site's (None: same site, or none sent)."""
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return origin
    return None


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a console page with the signed-in principal and the CSRF token."""
    who = context.pop("who", None) or signed_in(request)
    cookie = request.cookies.get(COOKIE, "")
    html = env.get_template(template).render(
        request=request, who=who, csrf=csrf_token(cookie) if cookie else "", **context,
    )  # fmt: skip
    resp = HTMLResponse(html, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def redirect(path: str) -> Response:
    return RedirectResponse(PREFIX + path, status_code=303)


def error_page(request: Request, exc: Exception) -> HTMLResponse:
    """A refusal or an error as a page: what happened, the rules and the
    decision's ledger entry when the gate refused, and what to do."""
    status = int(getattr(exc, "status", 400))
    fields = getattr(exc, "problem_fields", {}) or {}
    if status == 401:
        return page(request, "login.html", status=401, message=getattr(exc, "message", str(exc)),
                    next=request.url.path)  # fmt: skip
    return page(
        request,
        "error.html",
        status=status,
        title=getattr(exc, "title", "Error"),
        message=getattr(exc, "message", str(exc)),
        hint=getattr(exc, "hint", None),
        rules=fields.get("rules") or [],
        ledger_index=fields.get("ledger_index"),
    )
