"""POST /v1/users/{sub}/token/refresh: workers whose token Google refused ask for a new one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.sync import SyncKeeper
from grantkeeper.web import create_app

from ..app_world import World, store_of
from .conftest import SERVICE_KEY
from .test_signin_api import problem
from .test_token_api import AUTH, signed_in

pytestmark = pytest.mark.anyio


async def token_of(api: httpx.AsyncClient, sub: str) -> str:
    response = await api.get(f"/v1/users/{sub}/token", headers=AUTH)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def google_accepts(world: World, token: str) -> bool:
    response = httpx.get(world.emulator.base_url + "/tokeninfo", params={"access_token": token})
    return response.status_code == 200


async def test_twenty_workers_rejecting_one_token_cause_one_refresh(
    api: httpx.AsyncClient,
    world: World,
    keeper: Keeper,
    store_target: Any,
    store_keyring: Any,
) -> None:
    """Ten workers on each of two instances sharing one store: one refresh at Google."""
    sub = await signed_in(api, world)
    rejected = await token_of(api, sub)
    assert world.refreshes() == 0
    other_store = await store_target.open(store_keyring, keeper.clock)
    # A slow token endpoint keeps the refresh in flight while every worker asks.
    world.emulator.control.update_settings(response_delay_ms=300)
    try:
        async with Keeper(keeper.settings, clock=keeper.clock, store=other_store) as other:
            transport = httpx.ASGITransport(app=create_app(other))
            async with httpx.AsyncClient(
                transport=transport, base_url="https://keeper-2.test"
            ) as api2:
                answers = await asyncio.gather(
                    *(
                        client.post(
                            f"/v1/users/{sub}/token/refresh",
                            json={"rejected_token": rejected},
                            headers=AUTH,
                        )
                        for _ in range(10)
                        for client in (api, api2)
                    )
                )
    finally:
        world.emulator.control.update_settings(response_delay_ms=0)
        await other_store.close()
    assert [a.status_code for a in answers] == [200] * 20, answers[0].text
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    (fresh,) = tokens
    assert fresh != rejected
    assert world.refreshes() == 1
    assert google_accepts(world, fresh)
    assert all(a.headers["cache-control"].startswith("no-store") for a in answers)
    stored = await store_of(keeper).get_grant(sub)
    assert stored is not None
    assert stored.access_token == fresh


async def test_a_token_older_than_the_stored_one_is_not_refreshed_again(
    api: httpx.AsyncClient, world: World
) -> None:
    sub = await signed_in(api, world)
    first = await token_of(api, sub)
    url = f"/v1/users/{sub}/token/refresh"
    second = (await api.post(url, json={"rejected_token": first}, headers=AUTH)).json()
    assert world.refreshes() == 1
    # A worker that still held the first token: the newer stored token is its answer.
    late = (await api.post(url, json={"rejected_token": first}, headers=AUTH)).json()
    assert late == second
    assert world.refreshes() == 1
    # The newer token refused as well: refreshed again.
    third = (
        await api.post(url, json={"rejected_token": second["access_token"]}, headers=AUTH)
    ).json()
    assert third["access_token"] not in (first, second["access_token"])
    assert world.refreshes() == 2


async def test_without_a_body_the_stored_token_is_replaced_once_for_concurrent_callers(
    api: httpx.AsyncClient, world: World
) -> None:
    sub = await signed_in(api, world)
    before = await token_of(api, sub)
    world.emulator.control.update_settings(response_delay_ms=300)
    try:
        answers = await asyncio.gather(
            *(api.post(f"/v1/users/{sub}/token/refresh", headers=AUTH) for _ in range(5))
        )
    finally:
        world.emulator.control.update_settings(response_delay_ms=0)
    assert {a.status_code for a in answers} == {200}
    tokens = {a.json()["access_token"] for a in answers}
    assert len(tokens) == 1
    assert before not in tokens
    assert world.refreshes() == 1
    # An empty JSON object is the same request.
    again = await api.post(f"/v1/users/{sub}/token/refresh", json={}, headers=AUTH)
    assert again.json()["access_token"] not in (before, *tokens)
    assert world.refreshes() == 2


async def test_refusals(api: httpx.AsyncClient, world: World) -> None:
    sub = await signed_in(api, world)
    url = f"/v1/users/{sub}/token/refresh"
    problem(await api.post(url), 401, "unauthorized")
    problem(await api.post("/v1/users/nobody/token/refresh", headers=AUTH), 404, "unknown_user")
    body = problem(
        await api.post(url, json={"rejected_token": "ya29.x", "scope": "drive"}, headers=AUTH),
        400,
        "invalid_request",
    )
    assert "'scope' is not part of this request" in body["detail"]
    assert "ya29.x" not in str(body)
    problem(await api.post(url, json=["ya29.x"], headers=AUTH), 400, "invalid_request")
    world.emulator.control.revoke_user(world.sub)
    dead = problem(await api.post(url, headers=AUTH), 409, "grant_revoked")
    assert dead["reason"] == "revoked"
    assert world.refreshes() == 1  # the one refused refresh that found the grant revoked


def test_sync_keeper_takes_the_rejected_token(world: World, store_target: Any) -> None:
    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
            "service_api_keys": [SERVICE_KEY],
        }
    )
    with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:
        sub = keeper.sign_in(world.code()).sub
        first = keeper.access_token(sub)
        renewed = keeper.access_token(sub, rejected=first.token)
        assert renewed.refreshed
        assert renewed.token != first.token
        assert keeper.refresh(sub, rejected=first.token).token == renewed.token
        assert world.refreshes() == 1
        forced = keeper.refresh(sub)
        assert forced.refreshed
        assert world.refreshes() == 2
