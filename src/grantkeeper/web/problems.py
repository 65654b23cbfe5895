"""RFC 9457 problem documents: the one place errors become HTTP answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grantkeeper.errors import GrantkeeperError, InvalidRequest
from grantkeeper.logsafety import printable

log = logging.getLogger("grantkeeper.web")

PROBLEM_JSON = "application/problem+json"


def problem_response(error: GrantkeeperError, request: Request | None = None) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    retry_after = error.extra.get("retry_after")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="grantkeeper"'
    return JSONResponse(
        error.to_problem(instance=request.url.path if request else None),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def logged_problem(error: GrantkeeperError, request: Request) -> JSONResponse:
    """The answer to a request that failed with ``error``, logged with what the public body
    leaves out (e.g. which database is down): INFO for the caller's mistakes, WARNING for 5xx."""
    level = logging.WARNING if error.status >= 500 else logging.INFO
    reason = getattr(error, "reason", None)
    if error.public_detail and not reason:
        reason = error.message
    log.log(
        level,
        "%s %s -> %s (%s)%s",
        request.method,
        printable(request.url.path),
        error.status,
        error.code,
        f" reason={printable(str(reason))}" if reason else "",
    )
    return problem_response(error, request)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(GrantkeeperError)
    async def _known(request: Request, exc: GrantkeeperError) -> JSONResponse:
        return logged_problem(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's messages can echo input values; name only the fields.
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        error = InvalidRequest("Invalid or missing fields: " + ", ".join(f for f in fields if f))
        return problem_response(error, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = GrantkeeperError(str(exc.detail))
        body = error.to_problem(instance=request.url.path)
        body.update(
            status=exc.status_code,
            code="not_found" if exc.status_code == 404 else "http_error",
            title=str(exc.detail),
            advice="See /docs for the endpoints this service offers.",
            type="about:blank",
        )
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception(
            "unhandled error on %s %s", printable(request.method), printable(request.url.path)
        )
        return problem_response(GrantkeeperError(), request)
