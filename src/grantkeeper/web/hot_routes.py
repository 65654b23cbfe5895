"""The routes nearly every request goes to, answered without FastAPI's routing machinery.

A token read, a forced refresh, a sign-in and ``/healthz`` are matched here and handed straight
to the functions their FastAPI routes call (:mod:`grantkeeper.web.routes`), with the same
guards (:func:`~grantkeeper.web.auth.authorized_key`) and the same error answers (the app's
exception handlers, :mod:`grantkeeper.web.problems`). FastAPI's router, its request and response
wrappers, its exit stack and its dependency solving cost a quarter of a token read's CPU
(py-spy on ``grantkeeper serve``), more than reading and auditing the grant does on SQLite.

The routes stay declared in :mod:`grantkeeper.web.routes`: they make the OpenAPI document and
``/docs``, and they answer wherever this middleware is not installed. Anything this module does
not match exactly (another method, a trailing slash, any other path) goes on to FastAPI, which
answers it as before: 404, 405, a redirect. ``/healthz`` is here so that it stays what the
benchmark takes it for, the cost of the serving stack itself.

The middleware sits inside the proxy-header middleware and inside whatever middleware an
``extend`` hook adds (``create_app`` adds it first), so a trusted proxy's ``X-Forwarded-Proto``
and ``X-Forwarded-For`` count as they do for every route. An exception goes to the handler the
app has registered for its class (or, for an ``HTTPException``, its status), as Starlette's
``ExceptionMiddleware`` would send it from a FastAPI route: a
:class:`~grantkeeper.errors.GrantkeeperError` and a body over a parent app's ``max_body_size``
become problem documents, and a handler an extension registers is honoured. An exception with no
handler but the catch-all goes on to the app's handler for unexpected errors (a 500).

With FastAPI's own OpenTelemetry instrumentation, these routes get the same server span, name,
``http.route`` and metrics as before; they have no ``fastapi.dependencies`` or
``fastapi.endpoint`` child spans, because no FastAPI dependency or endpoint runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from grantkeeper.keeper import Keeper
from grantkeeper.web.auth import authorized_key
from grantkeeper.web.routes import answer_refresh, answer_sign_in, answer_token


def _no_telemetry(*, scope: MutableMapping[str, Any], path: str | None) -> None:
    return None


def _route_picker() -> Callable[..., None]:
    """FastAPI's hook that names its OpenTelemetry server span after the route its router
    picked, or a no-op where this FastAPI has no such hook or a different one.

    The hook is private (``fastapi.telemetry._api``); its keyword parameters are checked so that
    a FastAPI that changes it costs the span its route name, never a request its answer.
    """
    try:
        from fastapi.telemetry._api import _route_selected
    except ImportError:  # pragma: no cover - a FastAPI without native telemetry
        return _no_telemetry
    try:
        parameters = inspect.signature(_route_selected).parameters
    except (TypeError, ValueError):  # pragma: no cover - not introspectable
        return _no_telemetry
    if {"scope", "path"} <= parameters.keys():
        return _route_selected
    return _no_telemetry  # pragma: no cover - a FastAPI whose hook changed


_route_picked = _route_picker()


Handler = Callable[[Request, str], Awaitable[Response]]

# Starlette's ``{sub}`` matches one path segment of the decoded path: [^/]+.
_USER_ROUTE = re.compile(r"/v1/users/([^/]+)/(token(?:/refresh)?)")


async def _healthz(request: Request, sub: str) -> Response:
    return JSONResponse({"status": "ok"})


async def _sign_in(request: Request, sub: str) -> Response:
    return await answer_sign_in(request, _keeper(request))


async def _token(request: Request, sub: str) -> Response:
    key = authorized_key(request, "token")
    scope = request.query_params.getlist("scope")
    return await answer_token(_keeper(request), key, sub, scope or None)


async def _refresh(request: Request, sub: str) -> Response:
    key = authorized_key(request, "refresh")
    return await answer_refresh(request, _keeper(request), key, sub)


def _keeper(request: Request) -> Keeper:
    keeper: Keeper = request.app.state.keeper
    return keeper


#: (method, path) → (handler, the route's path as declared)
_FIXED: dict[tuple[str, str], tuple[Handler, str]] = {
    ("GET", "/healthz"): (_healthz, "/healthz"),
    ("POST", "/v1/google/signin"): (_sign_in, "/v1/google/signin"),
}
_PER_USER: dict[tuple[str, str], tuple[Handler, str]] = {
    ("GET", "token"): (_token, "/v1/users/{sub}/token"),
    ("POST", "token/refresh"): (_refresh, "/v1/users/{sub}/token/refresh"),
}


def route_path(scope: Scope) -> str:
    """The path the app's routes see: under a mount (or ``--root-path``), without its prefix
    (as Starlette's router takes it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


ExceptionHandler = Callable[[Request, Exception], Any]


def exception_handler(app: Any, error: Exception) -> ExceptionHandler | None:
    """The handler ``app`` has registered for ``error``, looked up as Starlette's
    ``ExceptionMiddleware`` looks it up: an ``HTTPException``'s status first, then the error's
    classes, nearest first. The catch-all (``Exception`` or 500) is left to the outermost
    middleware, as for a FastAPI route."""
    handlers: dict[Any, ExceptionHandler] = getattr(app, "exception_handlers", {})
    if isinstance(error, HTTPException) and error.status_code != 500:
        handler = handlers.get(error.status_code)
        if handler is not None:
            return handler
    for cls in type(error).__mro__:
        if cls is Exception:
            return None
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None  # pragma: no cover - every exception class derives from Exception


def _is_async(handler: ExceptionHandler) -> bool:
    # A class instance with an async __call__ counts too, as Starlette's is_async_callable.
    call = type(handler).__call__ if not inspect.isroutine(handler) else handler
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def match(method: str, path: str) -> tuple[Handler, str, str] | None:
    """The handler for ``method`` on ``path``, the route's declared path, and the path's
    ``sub`` ("" if it has none)."""
    fixed = _FIXED.get((method, path))
    if fixed is not None:
        return fixed[0], fixed[1], ""
    found = _USER_ROUTE.fullmatch(path)
    if found is None:
        return None
    route = _PER_USER.get((method, found.group(2)))
    return None if route is None else (route[0], route[1], found.group(1))


class HotRoutes:
    """ASGI middleware answering the routes above; everything else goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = match(scope["method"], route_path(scope))
            if found is not None:
                handler, declared, sub = found
                if sub:
                    scope["path_params"] = {**scope.get("path_params", {}), "sub": sub}
                if "fastapi.telemetry" in scope:
                    _route_picked(scope=scope, path=declared)
                request = Request(scope, receive)
                try:
                    response = await handler(request, sub)
                except Exception as error:
                    found_handler = exception_handler(scope.get("app"), error)
                    if found_handler is None:
                        raise
                    if _is_async(found_handler):
                        response = await found_handler(request, error)
                    else:
                        response = await run_in_threadpool(found_handler, request, error)
                    # A handler may answer nothing, as under Starlette's ExceptionMiddleware.
                    if response is None:
                        return
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
