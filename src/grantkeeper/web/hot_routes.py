"""The routes nearly every request goes to, answered without FastAPI's routing machinery.

A token read, a forced refresh, a sign-in and ``/healthz`` are matched here and handed straight
to the functions their FastAPI routes call (:mod:`grantkeeper.web.routes`), with the same
guards (:func:`~grantkeeper.web.auth.authorized_key`) and the same error answers
(:func:`~grantkeeper.web.problems.logged_problem`). FastAPI's router, its request and response
wrappers, its exit stack and its dependency solving cost a quarter of a token read's CPU
(py-spy on ``grantkeeper serve``), more than reading and auditing the grant does on SQLite.

The routes stay declared in :mod:`grantkeeper.web.routes`: they make the OpenAPI document and
``/docs``, and they answer wherever this middleware is not installed. Anything this module does
not match exactly (another method, a trailing slash, any other path) goes on to FastAPI, which
answers it as before: 404, 405, a redirect. ``/healthz`` is here so that it stays what the
benchmark takes it for, the cost of the serving stack itself.

The middleware sits inside the proxy-header middleware (``create_app`` adds it first), so a
trusted proxy's ``X-Forwarded-Proto`` and ``X-Forwarded-For`` count as they do for every route.
An error other than a :class:`~grantkeeper.errors.GrantkeeperError` goes on to the app's
handler for unexpected errors, as it does from a FastAPI route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper import Keeper
from grantkeeper.web.auth import authorized_key
from grantkeeper.web.problems import logged_problem
from grantkeeper.web.routes import answer_refresh, answer_sign_in, answer_token

try:
    # FastAPI's own OpenTelemetry server spans (once an SDK is configured) take their name and
    # ``http.route`` from the route its router picked; these routes tell it the same way.
    from fastapi.telemetry._api import _route_selected as _route_picked
except ImportError:  # pragma: no cover - a FastAPI without native telemetry

    def _route_picked(
        *, scope: MutableMapping[str, Any], path: str | None, mount: bool = False
    ) -> None:
        return None


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
                except GrantkeeperError as error:
                    response = logged_problem(error, request)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
