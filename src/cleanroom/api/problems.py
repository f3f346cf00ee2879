"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cleanroom.errors import CleanroomError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    hint: str | None = Field(None, description="what to do about it")
    rules: list[str] | None = Field(None, description="403: the policy rules that decided")
    ledger_index: int | None = Field(None, description="403: the decision's ledger entry")
    errors: list[dict[str, Any]] | None = Field(None, description="422: each invalid field")


def _described(what: str) -> dict[str, Any]:
    return {"model": Problem, "description": what,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}  # fmt: skip


# The error answers every route may give (in the OpenAPI document).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("Bad request"),
    401: _described("No valid bearer token"),
    403: _described("Refused by the gate (the rules and the decision's ledger index)"),
    404: _described("Not found"),
    409: _described("Conflicts with what is stored"),
    413: _described("Body too large for this route"),
    422: _described("Invalid input (not I-JSON, or a field out of its domain)"),
    429: _described("Too many refused requests, or the privacy budget is spent"),
    503: _described("Not ready yet (a model training, a dependency down)"),
}


PageRenderer = Callable[[Request, Exception], Response]


def _as_error(status: int, title: str, detail: str) -> CleanroomError:
    e = CleanroomError(detail)
    e.status, e.title = status, title  # type: ignore[misc]
    return e


def install(app: FastAPI, pages: PageRenderer | None = None, page_prefix: str = "") -> None:
    """Map every exception type to a problem response — or, for a path under
    ``page_prefix`` (the console), to the page ``pages`` renders."""

    def html(request: Request) -> bool:
        path = request.url.path
        return pages is not None and (path == page_prefix or path.startswith(page_prefix + "/"))

    async def known(request: Request, exc: Exception) -> Response:
        if html(request):
            return pages(request, exc)  # type: ignore[misc]
        status = getattr(exc, "status", 400)
        resp = problem(
            status,
            getattr(exc, "title", "Error"),
            getattr(exc, "message", str(exc)),
            request.url.path,
            hint=getattr(exc, "hint", None),
            **getattr(exc, "problem_fields", {}),
        )
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="cleanroom"'
        return resp

    async def validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        if html(request):
            return pages(request, _as_error(422, "Invalid request", f"{where}: {first['msg']}"))  # type: ignore[misc]
        return problem(
            422, "Invalid request", f"{where}: {first['msg']}", request.url.path, errors=errors
        )

    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        if html(request):
            title = titles.get(exc.status_code, "HTTP error")
            return pages(request, _as_error(exc.status_code, title, str(exc.detail)))  # type: ignore[misc]
        resp = problem(
            exc.status_code,
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            request.url.path,
        )
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        if html(request):
            return pages(
                request, _as_error(500, "Internal error", "the server failed; see its log")
            )  # type: ignore[misc]
        return problem(500, "Internal error", "the server failed; see its log", request.url.path)

    app.add_exception_handler(CleanroomError, known)
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
