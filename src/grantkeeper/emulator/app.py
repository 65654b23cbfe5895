"""``create_app``: the emulator's ASGI app, Google's endpoints and the control API on one origin."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grantkeeper._version import __version__
from grantkeeper.emulator import consent, control, identity_routes, token_route
from grantkeeper.emulator.config import EmulatorConfig
from grantkeeper.emulator.control import ControlError
from grantkeeper.emulator.faults import DropConnection
from grantkeeper.emulator.state import EmulatorState

#: Routers written alongside the OAuth core (Drive, Photos, the RISC transmitter); included when
#: their modules are present.
API_MODULES = ("drive", "photos", "risc", "discovery_docs")


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

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                hold = self.state.settings.response_delay_ms
                if hold and google:
                    await asyncio.sleep(hold / 1000)
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
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


def _api_module(name: str) -> ModuleType | None:
    qualified = f"grantkeeper.emulator.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as error:
        if error.name == qualified:
            return None
        raise


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
    for module in (identity_routes, token_route, consent, control):
        app.include_router(module.build_router(state))
    for name in API_MODULES:
        api = _api_module(name)
        if api is not None:
            app.include_router(api.build_router(state))

    async def control_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ControlError)
        body = {"error": error.error, "error_description": error.description}
        return JSONResponse(body, status_code=error.status)

    app.add_exception_handler(ControlError, control_error)
    app.add_middleware(EmulatorMiddleware, state=state)
    return app


def emulator_state(app: FastAPI) -> EmulatorState:
    state = app.state.emulator
    assert isinstance(state, EmulatorState)
    return state
