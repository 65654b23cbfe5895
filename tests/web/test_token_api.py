"""GET /v1/users/{sub}/token and DELETE /v1/users/{sub}/grant over HTTP."""

from __future__ import annotations

import httpx
import pytest

from grantkeeper.keeper import Keeper

from ..app_world import DRIVE_APPDATA, World
from .conftest import SERVICE_KEY
from .test_signin_api import XRW, problem

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}


async def signed_in(api: httpx.AsyncClient, world: World) -> str:
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    assert response.status_code == 200, response.text
    sub: str = response.json()["user"]["sub"]
    return sub


async def test_token_for_a_worker(api: httpx.AsyncClient, world: World, keeper: Keeper) -> None:
    sub = await signed_in(api, world)
    response = await api.get(f"/v1/users/{sub}/token", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("ya29.")
    assert body["expires_at"].endswith("Z")
    assert "openid" in body["scopes"]
    world.emulator.control.advance_clock(2 * 3600)
    again = (await api.get(f"/v1/users/{sub}/token", headers=AUTH)).json()
    assert again["access_token"] != body["access_token"]
    assert world.refreshes() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"Authorization": f"Basic {SERVICE_KEY}"},
    ],
)
async def test_unauthorized(api: httpx.AsyncClient, world: World, headers: dict[str, str]) -> None:
    sub = await signed_in(api, world)
    response = await api.get(f"/v1/users/{sub}/token", headers=headers)
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "ya29." not in response.text


async def test_hashed_service_keys_are_accepted(keeper: Keeper, world: World) -> None:
    import hashlib

    from grantkeeper.web import create_app

    keeper.settings = keeper.settings.model_copy(
        update={
            "service_api_keys": ["sha256:" + hashlib.sha256(b"hashed-key-0123456789").hexdigest()]
        }
    )
    app = create_app(keeper)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
    ) as api:
        sub = await signed_in(api, world)
        response = await api.get(
            f"/v1/users/{sub}/token", headers={"Authorization": "Bearer hashed-key-0123456789"}
        )
    assert response.status_code == 200


async def test_unknown_user(api: httpx.AsyncClient) -> None:
    problem(await api.get("/v1/users/123/token", headers=AUTH), 404, "unknown_user")


async def test_insufficient_scope(api: httpx.AsyncClient, world: World) -> None:
    sub = await signed_in(api, world)
    response = await api.get(
        f"/v1/users/{sub}/token", params={"scope": DRIVE_APPDATA}, headers=AUTH
    )
    body = problem(response, 403, "insufficient_scope")
    assert body["missing_scopes"] == [DRIVE_APPDATA]


async def test_grant_revoked(api: httpx.AsyncClient, world: World) -> None:
    sub = await signed_in(api, world)
    world.emulator.control.revoke_user(sub)
    world.emulator.control.advance_clock(2 * 3600)
    response = await api.get(f"/v1/users/{sub}/token", headers=AUTH)
    body = problem(response, 409, "grant_revoked")
    assert body["reason"] == "revoked"
    assert "sign in again" in body["advice"]


async def test_provider_unavailable(api: httpx.AsyncClient, world: World) -> None:
    sub = await signed_in(api, world)
    world.emulator.control.advance_clock(2 * 3600)
    world.emulator.control.add_fault("token", status=503, count=None)
    try:
        response = await api.get(f"/v1/users/{sub}/token", headers=AUTH)
    finally:
        world.emulator.control.clear_faults()
    problem(response, 503, "provider_unavailable")
    # The grant cools down: the next call is 503 with Retry-After at once, Google untouched.
    spent = world.refreshes()
    cooling = await api.get(f"/v1/users/{sub}/token", headers=AUTH)
    problem(cooling, 503, "provider_unavailable")
    assert 0 < int(cooling.headers["retry-after"]) <= 30
    assert world.refreshes() == spent
    world.emulator.control.advance_clock(31)
    assert (await api.get(f"/v1/users/{sub}/token", headers=AUTH)).status_code == 200


async def test_disconnect_revokes_at_the_provider(api: httpx.AsyncClient, world: World) -> None:
    sub = await signed_in(api, world)
    response = await api.delete(f"/v1/users/{sub}/grant", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at_provider"] is True
    stats = world.stats()
    assert stats.get("revoke", 0) >= 1
    assert stats["live_refresh_tokens_per_user"].get(sub, 0) == 0
    problem(await api.get(f"/v1/users/{sub}/token", headers=AUTH), 409, "grant_revoked")
    again = await api.delete(f"/v1/users/{sub}/grant", headers=AUTH)
    assert again.status_code == 200
    forgotten = await api.delete(f"/v1/users/{sub}/grant?forget=true", headers=AUTH)
    assert forgotten.json()["forgotten"] is True
    problem(await api.get(f"/v1/users/{sub}/token", headers=AUTH), 404, "unknown_user")


async def test_no_service_keys_configured_says_so(keeper: Keeper, world: World) -> None:
    from grantkeeper.web import create_app

    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": []})
    app = create_app(keeper)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
    ) as api:
        response = await api.get("/v1/users/123/token", headers=AUTH)
    body = problem(response, 401, "unauthorized")
    assert "GRANTKEEPER_SERVICE_API_KEYS holds no key" in body["detail"]
