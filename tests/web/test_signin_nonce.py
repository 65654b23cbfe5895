"""Sign-in bound to the app's session: the ID token's nonce must be the one the app sent."""

from __future__ import annotations

import httpx
import pytest

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import World, store_of
from .test_signin_api import XRW, problem

pytestmark = pytest.mark.anyio


async def test_the_nonce_given_to_google_sign_in_must_come_back(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    good = await api.post(
        "/v1/google/signin",
        json={"code": world.code(nonce="session-nonce-1"), "nonce": "session-nonce-1"},
        headers=XRW,
    )
    assert good.status_code == 200, good.text
    await keeper.disconnect(world.sub, forget=True)

    for code, sent in (
        (world.code(nonce="session-nonce-1"), "another-session"),  # a code from elsewhere
        (world.code(), "session-nonce-2"),  # a code made without any nonce
    ):
        response = await api.post(
            "/v1/google/signin", json={"code": code, "nonce": sent}, headers=XRW
        )
        body = problem(response, 400, "nonce_mismatch")
        assert "session-nonce" not in response.text
        assert world.sub not in response.text
        assert body["advice"]
    assert await store_of(keeper).list_users() == []  # nothing stored


async def test_a_setting_requires_the_nonce_before_the_code_is_spent(
    keeper: Keeper, world: World
) -> None:
    keeper.settings = keeper.settings.model_copy(update={"require_nonce": True})
    app = create_app(keeper)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
    ) as api:
        code = world.code(nonce="n-42")
        missing = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
        body = problem(missing, 400, "invalid_request")
        assert "nonce" in body["detail"]
        assert world.exchanges() == 0
        # The code was not spent: with its nonce it still signs in.
        fine = await api.post(
            "/v1/google/signin", json={"code": code, "nonce": "n-42"}, headers=XRW
        )
    assert fine.status_code == 200, fine.text
