"""What an attack run sent the HTTP API: each gets a clear 4xx (both stores), nothing a 500."""

from __future__ import annotations

import httpx
import pytest

from grantkeeper.errors import InvalidRequest
from grantkeeper.keeper import Keeper

from ..keeper.conftest import World

pytestmark = pytest.mark.anyio

XRW = {"X-Requested-With": "com.example.photos", "content-type": "application/json"}


async def test_deeply_nested_json_is_a_clear_400(api: httpx.AsyncClient, world: World) -> None:
    """D3: ~3,000 levels within the size limit used to end in RecursionError (500)."""
    body = b'{"code": "4/0A", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    assert len(body) < 16_384
    response = await api.post("/v1/google/signin", content=body, headers=XRW)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "nested" in response.json()["detail"]
    assert world.exchanges() == 0


async def test_lone_surrogate_is_a_clear_400(api: httpx.AsyncClient, world: World) -> None:
    """D4: ``{"code":"4/0A\\ud800"}`` used to fail encoding the code (500)."""
    response = await api.post("/v1/google/signin", content=b'{"code":"4/0A\\ud800"}', headers=XRW)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "surrogate" in response.json()["detail"]
    assert world.exchanges() == 0


async def test_the_library_refuses_a_lone_surrogate_too(keeper: Keeper) -> None:
    with pytest.raises(InvalidRequest, match="Unicode"):
        await keeper.sign_in("4/0A\ud800")
