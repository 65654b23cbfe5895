"""The keeper's HTTP API in front of a keeper on the emulator (fixtures from tests/keeper)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import World

SERVICE_KEY = "svc-key-for-tests-0123456789"


@pytest.fixture
async def api(keeper: Keeper, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS client for the keeper app (the ASGI app itself, no socket)."""
    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": [SERVICE_KEY]})
    app = create_app(keeper)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as client:
        yield client
