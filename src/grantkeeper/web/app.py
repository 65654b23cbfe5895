"""The keeper's ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from grantkeeper._version import __version__
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings
from grantkeeper.web import manage_routes, ops_routes, risc_routes
from grantkeeper.web.guards import ServiceKeys
from grantkeeper.web.hot_routes import HotRoutes
from grantkeeper.web.openapi import install_openapi
from grantkeeper.web.ops_access import OpsAccessMiddleware
from grantkeeper.web.problems import install_problem_handlers
from grantkeeper.web.rate_limits import RateLimiter
from grantkeeper.web.routes import router


def create_app(
    keeper: Keeper,
    *,
    owns_keeper: bool = False,
    extend: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """Build the HTTP API around ``keeper``.

    With ``owns_keeper`` the app opens the keeper on start-up and closes it on shutdown.
    ``extend`` may add routes (the dev-mode page does).
    """
    settings: Settings = keeper.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Every worker process delivers the webhook outbox; the store's claim keeps two
        # deliverers off one message.
        if owns_keeper:
            async with keeper:
                await keeper.start_webhook_delivery()
                yield
        else:
            await keeper.start_webhook_delivery()
            try:
                yield
            finally:
                await keeper.stop_webhook_delivery()

    app = FastAPI(
        title="grantkeeper",
        version=__version__,
        summary="Sign in with Google server auth codes; fresh access tokens while users are away.",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.keeper = keeper
    app.state.allow_insecure_http = bool(settings.allow_insecure_http)
    app.state.service_keys = ServiceKeys(settings.service_api_keys)
    app.state.max_request_bytes = settings.max_request_bytes
    app.state.signin_limiter = RateLimiter(
        settings.signin_rate_per_minute, what="from this address to the sign-in endpoint"
    )
    app.state.token_limiter = RateLimiter(
        settings.token_rate_per_minute, what="with this service key"
    )
    install_problem_handlers(app)
    install_openapi(app)
    app.include_router(router)
    app.include_router(risc_routes.router)
    app.include_router(manage_routes.router)
    app.include_router(ops_routes.router)
    # The busiest routes skip FastAPI's routing (web/hot_routes.py). Each add_middleware wraps
    # what was added before, so this one runs inside whatever ``extend`` and the lines below
    # add: after the proxy headers are applied and after an extension's own middleware.
    app.add_middleware(HotRoutes)
    if extend is not None:
        extend(app)
    # Inside the proxy-header middleware, so a trusted proxy's X-Forwarded-Proto counts.
    app.add_middleware(
        OpsAccessMiddleware,
        key=ServiceKeys([settings.ops_key] if settings.ops_key else [], name="GRANTKEEPER_OPS_KEY"),
        public=settings.ops_public,
        allow_insecure_http=bool(settings.allow_insecure_http),
    )
    # uvicorn's middleware applies X-Forwarded-Proto/-For only from the trusted proxies.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
