"""The same provider client mounted on the emulator's ASGI app in-process (``transport=``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from grantkeeper.clock import SYSTEM_CLOCK
from grantkeeper.emulator import AsyncEmulatorControl, EmulatorConfig, create_app
from grantkeeper.oauth import OAuthProvider
from grantkeeper.settings import Settings

pytestmark = pytest.mark.anyio

ORIGIN = "http://emulator.test"


async def test_sign_in_through_an_asgi_transport(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=create_app(EmulatorConfig(base_url=ORIGIN)))
    async with AsyncEmulatorControl(ORIGIN, transport=transport) as control:
        web = await control.create_client("web")
        android = await control.create_client("android")
        user = await control.create_user("grace@example.com", name="Grace Hopper")
        code = await control.server_auth_code(
            android["client_id"], web["web"]["client_id"], "grace@example.com"
        )
        secrets = tmp_path / "client_secret.json"
        secrets.write_text(json.dumps(web), encoding="utf-8")
        settings = Settings(
            _env_file=None,
            client_secrets_file=secrets,
            issuer=ORIGIN,
            allowed_client_ids=android["client_id"],  # a comma list, as in the environment
        )
        async with OAuthProvider(settings, clock=SYSTEM_CLOCK, transport=transport) as provider:
            signed_in = await provider.sign_in(code, "android")
        assert signed_in.identity.sub == user["sub"]
        assert signed_in.identity.name == "Grace Hopper"
        assert signed_in.identity.azp == android["client_id"]
        stats = await control.stats()
        assert stats["token"]["authorization_code"] == 1


async def test_the_provider_client_keeps_no_cookie_from_one_call_for_the_next(
    tmp_path: Path,
) -> None:
    # Every answer sets a cookie; no later request may carry it (one user's answer must not
    # leak into another user's call).
    seen: list[httpx.Request] = []

    def google(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        cookie = {"Set-Cookie": "NID=from-an-answer; Path=/; Domain=emulator.test"}
        if request.url.path == "/.well-known/openid-configuration":
            document = {
                "issuer": ORIGIN,
                "token_endpoint": f"{ORIGIN}/token",
                "revocation_endpoint": f"{ORIGIN}/revoke",
                "jwks_uri": f"{ORIGIN}/certs",
                "authorization_endpoint": f"{ORIGIN}/auth",
            }
            return httpx.Response(200, json=document, headers=cookie)
        if request.url.path == "/revoke":
            return httpx.Response(200, headers=cookie)
        return httpx.Response(400, json={"error": "invalid_grant"}, headers=cookie)

    secrets = tmp_path / "client_secret.json"
    web = {
        "web": {
            "client_id": "web.apps.googleusercontent.com",
            "client_secret": "s",
            "auth_uri": f"{ORIGIN}/auth",
            "token_uri": f"{ORIGIN}/token",
        }
    }
    secrets.write_text(json.dumps(web), encoding="utf-8")
    settings = Settings(
        _env_file=None, client_secrets_file=secrets, issuer=ORIGIN, allowed_client_ids="x"
    )
    transport = httpx.MockTransport(google)
    async with OAuthProvider(settings, clock=SYSTEM_CLOCK, transport=transport) as provider:
        await provider.revoke("1//first-user")
        provider._http.cookies.set("NID", "set-by-code", domain="emulator.test")
        await provider.revoke("1//second-user")
        assert len(provider._http.cookies) == 0
    assert len(seen) == 3  # discovery, then two revocations
    assert all("cookie" not in request.headers for request in seen)
