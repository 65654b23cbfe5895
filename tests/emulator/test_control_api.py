"""The control API: what it returns, what it refuses, and the in-process (ASGI) variant."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from google_auth_oauthlib.helpers import session_from_client_secrets_file
from oauth2client import clientsecrets

from grantkeeper.emulator import AsyncEmulatorControl, EmulatorHandle, create_app, emulator_state


def status_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(httpx.HTTPStatusError) as raised:
        call()
    return raised.value.response.status_code


def test_web_client_is_a_client_secret_json_pointing_here(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    document = emulator.control.create_client("web", redirect_uris=["http://localhost:9/cb"])
    web = document["web"]
    assert web["client_id"].endswith(".apps.googleusercontent.com")
    assert web["client_secret"].startswith("GOCSPX-")
    assert web["token_uri"] == f"{emulator.base_url}/token"
    assert web["auth_provider_x509_cert_url"] == f"{emulator.base_url}/oauth2/v1/certs"
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps(document))
    # Both Google parsers accept the file as downloaded from the Cloud Console.
    client_type, info = clientsecrets.loadfile(str(path))
    assert (client_type, info["client_id"]) == ("web", web["client_id"])
    session, config = session_from_client_secrets_file(str(path), scopes=["openid"])
    assert config["web"]["auth_uri"] == f"{emulator.base_url}/o/oauth2/auth"
    session.close()


def test_native_and_installed_clients(emulator: EmulatorHandle) -> None:
    ios = emulator.control.create_client("ios")
    assert set(ios) == {"client_id", "type", "project_id"}
    installed = emulator.control.create_client("installed")["installed"]
    assert installed["redirect_uris"] == ["http://localhost"]
    assert "javascript_origins" not in installed


def test_refusals(emulator: EmulatorHandle) -> None:
    control = emulator.control
    web = control.create_client("web", client_id="1-fixed.apps.googleusercontent.com")["web"]
    ios = control.create_client("ios")
    assert status_of(lambda: control.create_client("web", client_id=web["client_id"])) == 409
    user = control.create_user("quinn@example.com", hd="example.com")
    assert status_of(lambda: control.create_user("quinn@example.com")) == 409
    assert status_of(lambda: control.server_auth_code("nope", web["client_id"], "a@b.c")) == 404
    assert (
        status_of(lambda: control.server_auth_code(web["client_id"], ios["client_id"], "a@b.c"))
        == 400
    )
    assert status_of(lambda: control.revoke_user("123")) == 404
    assert status_of(lambda: control.password_change("123")) == 404
    assert status_of(lambda: control.advance_clock(-1)) == 400
    assert status_of(lambda: control.update_settings(access_token_ttl=0)) == 400
    assert status_of(lambda: control.update_settings(no_such_setting=1)) == 400
    assert status_of(lambda: control.add_fault()) == 400
    assert user["hd"] == "example.com"
    refused = control.http.post("/emulator/settings", json={"testing_mode": "maybe"})
    assert refused.json()["error"] == "invalid_settings"
    assert "testing_mode" in refused.json()["error_description"]


def test_clock_settings_and_reset(emulator: EmulatorHandle) -> None:
    control = emulator.control
    before = control.http.get("/emulator/clock").json()["now"]
    after = control.advance_clock(86400)
    assert after[:10] > before[:10]
    assert control.update_settings(testing_mode=True)["testing_mode"] is True
    control.create_user("rita@example.com")
    control.add_fault("token", status=500)
    control.reset()
    assert control.http.get("/emulator/users").json() == []
    assert control.http.get("/emulator/faults").json() == []
    assert control.http.get("/emulator/settings").json()["testing_mode"] is False
    assert control.http.get("/emulator/clock").json()["now"][:10] == before[:10]


def test_openapi_lists_the_control_api(emulator: EmulatorHandle) -> None:
    paths = emulator.control.http.get("/emulator/openapi.json").json()["paths"]
    assert "/emulator/server-auth-code" in paths
    assert "/token" not in paths
    assert emulator.control.http.get("/emulator/docs").status_code == 200


def test_in_process_app_with_the_async_control_client() -> None:
    async def scenario() -> None:
        app = create_app()
        transport = httpx.ASGITransport(app=app)
        async with AsyncEmulatorControl("http://emulator.test", transport=transport) as control:
            web = (await control.create_client("web"))["web"]
            assert web["token_uri"] == "http://emulator.test/token"
            code = await control.server_auth_code(web["client_id"], None, "sam@example.com")
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "",
                "client_id": web["client_id"],
                "client_secret": web["client_secret"],
            }
            token = await control.http.post("/token", data=form)
            assert token.status_code == 200
            assert (await control.stats())["token"]["authorization_code"] == 1
            assert emulator_state(app).lookup_access_token(token.json()["access_token"])

    asyncio.run(scenario())
