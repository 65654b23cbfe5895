"""``create_app``: the emulator's ASGI app, Google's endpoints and the control API on one origin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grantkeeper._version import __version__
from grantkeeper.emulator import control, discovery
from grantkeeper.emulator.config import EmulatorConfig
from grantkeeper.emulator.drive import routes as drive
from grantkeeper.emulator.errors import ControlError, unimplemented
from grantkeeper.emulator.faults import DropConnection
from grantkeeper.emulator.oauth import consent, identity_routes, token_route, userinfo_v2
from grantkeeper.emulator.oauth import control as oauth_control
from grantkeeper.emulator.photos import edits as photos_edits
from grantkeeper.emulator.photos import routes as photos
from grantkeeper.emulator.photospicker import control as photospicker_control
from grantkeeper.emulator.photospicker import page as photospicker_page
from grantkeeper.emulator.photospicker import routes as photospicker
from grantkeeper.emulator.request_log import BodyTap, client_of, request_log, shown_path
from grantkeeper.emulator.risc import transmitter as risc
from grantkeeper.emulator.state import EmulatorState

RouterFactory = Callable[[EmulatorState], APIRouter]

#: The Google services the emulator imitates, one subpackage each, mounted in this order on one
#: origin. A new service (say ``photospicker/``) is a subpackage with a ``build_router(state)``
#: and one line here.
SERVICES: dict[str, tuple[RouterFactory, ...]] = {
    # accounts.google.com, oauth2.googleapis.com, openidconnect.googleapis.com
    "oauth": (
        identity_routes.build_router,
        token_route.build_router,
        consent.build_router,
        userinfo_v2.build_router,
        oauth_control.build_router,
    ),
    "drive": (drive.build_router,),  # www.googleapis.com/drive/v3
    "photos": (photos.build_router, photos_edits.build_router),  # photoslibrary.googleapis.com
    # photospicker.googleapis.com, and the picker page behind pickerUri (photos.google.com)
    "photospicker": (
        photospicker.build_router,
        photospicker_page.build_router,
        photospicker_control.build_router,
    ),
    "risc": (risc.build_router,),  # risc.googleapis.com
    "discovery": (discovery.build_router,),  # www.googleapis.com/discovery/v1
}


class EmulatorMiddleware:
    """Adds the configured latency (before the work) and response delay (after it) to Google's
    endpoints, and turns :class:`DropConnection` into
    a connection closed mid-response (headers sent, body cut short)."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        google = not scope["path"].startswith("/emulator/")
        latency = self.state.settings.latency_ms
        if latency and google:
            await asyncio.sleep(latency / 1000)
        started = False
        status = 0
        tap = BodyTap(scope)

        async def tapping_receive() -> Message:
            message = await receive()
            tap.see(message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                hold = self.state.settings.response_delay_ms
                if hold and google:
                    await asyncio.sleep(hold / 1000)
            await send(message)

        try:
            await self.app(scope, tapping_receive if google else receive, tracking_send)
        except DropConnection:
            if started:
                return
            # ASGI has no "close now"; a promised body that never comes makes the server close
            # the socket, which every HTTP client reports as a broken connection.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json; charset=utf-8"),
                        (b"content-length", b"4096"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"acc', "more_body": True})
        finally:
            if google:
                self._log(scope, status, tap)

    def _log(self, scope: Scope, status: int, tap: BodyTap) -> None:
        request_log(self.state).add(
            {
                "time": self.state.clock.now().isoformat(),
                "method": scope["method"],
                "path": shown_path(scope["path"]),
                "status": status or None,
                "client_id": client_of(self.state, scope, tap),
            }
        )


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """A fresh emulator (its own state); ``app.state.emulator`` is the :class:`EmulatorState`."""
    state = EmulatorState(config)
    app = FastAPI(
        title="grantkeeper emulator",
        version=__version__,
        description="A Google-compatible OAuth 2.0 / OpenID Connect provider with a control API.",
        docs_url="/emulator/docs",
        openapi_url="/emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = state
    for routers in SERVICES.values():
        for build_router in routers:
            app.include_router(build_router(state))
    app.include_router(control.build_router(state))

    async def control_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ControlError)
        body = {"error": error.error, "error_description": error.description}
        return JSONResponse(body, status_code=error.status)

    async def no_route(request: Request, error: Exception) -> Response:
        # A path (or method) the emulator does not serve: Google's front end answers in its JSON
        # envelope, never FastAPI's {"detail": "Not Found"}; the control API in its own shape.
        assert isinstance(error, StarletteHTTPException)
        if request.url.path.startswith("/emulator/"):
            description = (
                f"No control call {request.method} {request.url.path}; the control API is "
                "listed at /emulator/docs."
            )
            return JSONResponse(
                {"error": "not_found", "error_description": description},
                status_code=error.status_code,
            )
        return unimplemented(error.status_code).to_response()

    app.add_exception_handler(ControlError, control_error)
    app.add_exception_handler(StarletteHTTPException, no_route)
    app.add_middleware(EmulatorMiddleware, state=state)
    return app


def emulator_state(app: FastAPI) -> EmulatorState:
    state = app.state.emulator
    assert isinstance(state, EmulatorState)
    return state
