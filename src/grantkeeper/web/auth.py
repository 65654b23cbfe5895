"""The service-key dependency: HTTPS, a configured key, and the operation it is allowed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from grantkeeper.keeper import Keeper
from grantkeeper.service_keys import ServiceKey
from grantkeeper.web.guards import ServiceKeys, require_https
from grantkeeper.web.openapi import needs_service_key


def service_key(operation: str) -> Callable[..., Awaitable[ServiceKey]]:
    """A dependency answering the calling :class:`ServiceKey` if it may do ``operation``."""

    # async, like every dependency here: FastAPI runs a plain ``def`` dependency in its thread
    # pool, a thread hop per request (py-spy: ~6% of a token read's CPU). The bearer scheme is
    # declared in the OpenAPI document (needs_service_key), not by a sub-dependency: FastAPI
    # would solve that on every request too, only to parse the header ServiceKeys parses.
    @needs_service_key
    async def check(request: Request) -> ServiceKey:
        return authorized_key(request, operation)

    return check


def authorized_key(request: Request, operation: str) -> ServiceKey:
    """The calling :class:`ServiceKey`, over HTTPS, if it may do ``operation``, its rate limit
    spent (the dependency above and :mod:`grantkeeper.web.hot_routes` both ask here).

    Raises:
        InsecureTransport, Unauthorized, ServiceKeyLimit, RateLimited.
    """
    state = request.app.state
    require_https(request, state.allow_insecure_http)
    keys: ServiceKeys = state.service_keys
    key = keys.check(request, operation)
    # Per key, after it proved valid (a wrong key is 401 and spends nothing).
    state.token_limiter.hit(key.name)
    return key


TokenKey = Annotated[ServiceKey, Depends(service_key("token"))]
RefreshKey = Annotated[ServiceKey, Depends(service_key("refresh"))]
DisconnectKey = Annotated[ServiceKey, Depends(service_key("disconnect"))]
ManageKey = Annotated[ServiceKey, Depends(service_key("manage"))]


async def get_keeper(request: Request) -> Keeper:
    """The keeper the app serves (made by the app's lifespan)."""
    keeper: Keeper = request.app.state.keeper
    return keeper


KeeperDep = Annotated[Keeper, Depends(get_keeper)]
