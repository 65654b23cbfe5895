"""Problems for a narrow or dead grant say what the app must do, per platform: the scopes for
GIDSignIn's additionalScopes and Android, and a ready authorization URL for the web."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..keeper.conftest import DRIVE_APPDATA, OPENID, World
from .conftest import SERVICE_KEY
from .test_openapi_contract import conforms
from .test_signin_api import XRW

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}
PHOTOS = "https://www.googleapis.com/auth/photoslibrary.appendonly"
PAGE = "http://127.0.0.1/"  # registered for the web client by make_world


@pytest.fixture
async def web_api(keeper: Keeper) -> AsyncIterator[httpx.AsyncClient]:
    keeper.settings = keeper.settings.model_copy(
        update={"service_api_keys": [SERVICE_KEY], "web_redirect_uri": PAGE}
    )
    transport = httpx.ASGITransport(app=create_app(keeper))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as api:
        yield api


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_missing_scopes_come_with_what_to_ask_for(
    web_api: httpx.AsyncClient, world: World
) -> None:
    spec = (await web_api.get("/openapi.json")).json()
    signed = await web_api.post(
        "/v1/google/signin", json={"code": world.code([*OPENID, DRIVE_APPDATA])}, headers=XRW
    )
    sub = signed.json()["user"]["sub"]
    body = conforms(
        spec,
        await web_api.get(f"/v1/users/{sub}/token", params={"scope": PHOTOS}, headers=AUTH),
        "/v1/users/{sub}/token",
    )
    assert body["code"] == "insufficient_scope"
    todo = body["reconsent"]
    assert todo["scopes"] == [PHOTOS]
    assert todo["refresh_token_needed"] is False
    assert todo["ios"]["additional_scopes"] == [PHOTOS]
    assert "additionalScopes" in todo["ios"]["how"]
    assert todo["android"]["scopes"] == [PHOTOS]
    url = todo["web"]["authorization_url"]
    assert url.startswith(world.emulator.base_url)
    params = query(url)
    assert params == {
        "client_id": world.web_client_id,
        "response_type": "code",
        "scope": PHOTOS,
        "include_granted_scopes": "true",
        "access_type": "offline",
        "login_hint": sub,
        "redirect_uri": PAGE,
    }
    # The URL is one Google's consent page takes as it is (the app adds its state).
    page = httpx.get(url + "&state=xyz")
    assert page.status_code == 200, page.text


async def test_a_revoked_grant_asks_for_consent_again(
    web_api: httpx.AsyncClient, world: World
) -> None:
    spec = (await web_api.get("/openapi.json")).json()
    signed = await web_api.post(
        "/v1/google/signin", json={"code": world.code([*OPENID, DRIVE_APPDATA])}, headers=XRW
    )
    sub = signed.json()["user"]["sub"]
    world.emulator.control.revoke_user(sub)
    world.emulator.control.advance_clock(2 * 3600)
    for _ in range(2):  # the refusal that finds it revoked, then the stored state
        body = conforms(
            spec,
            await web_api.get(f"/v1/users/{sub}/token", headers=AUTH),
            "/v1/users/{sub}/token",
        )
        assert body["code"] == "grant_revoked"
        todo = body["reconsent"]
        assert todo["refresh_token_needed"] is True
        assert DRIVE_APPDATA in todo["scopes"]
        assert "openid" in todo["scopes"]
        assert "forceCodeForRefreshToken" in todo["android"]["how"]
        params = query(todo["web"]["authorization_url"])
        assert params["prompt"] == "consent"
        assert params["access_type"] == "offline"
        assert params["include_granted_scopes"] == "true"
