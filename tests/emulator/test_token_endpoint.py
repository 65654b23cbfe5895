"""``POST /token``: Google's answers, byte for byte where the reference pins them, in Google's
order of checks (google-protocol.md §3, §10)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import httpx
import pytest

from grantkeeper.emulator.oauth.rules import EMAIL_SCOPE, PROFILE_SCOPE

from .oauth_api import REDIRECT, OAuthApi

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


def error(response: httpx.Response) -> tuple[int, dict[str, str]]:
    return response.status_code, response.json()


def test_server_auth_code_exchange_has_googles_fields(api: OAuthApi) -> None:
    response = api.exchange(api.code())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == [
        "access_token",
        "expires_in",
        "refresh_token",
        "scope",
        "token_type",
        "id_token",
    ]
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {EMAIL_SCOPE, PROFILE_SCOPE, "openid", DRIVE_APPDATA}
    assert len(body["access_token"]) <= 2048
    assert len(body["refresh_token"]) <= 512


def test_code_shape_and_both_mobile_redirect_uris(api: OAuthApi) -> None:
    code = api.code()
    assert code.startswith("4/0")
    assert len(code) <= 256
    assert api.exchange(code, redirect_uri="postmessage").status_code == 200
    assert api.exchange(api.code(), redirect_uri="").status_code == 200


def test_strict_mobile_redirect_uris_answer_like_google(api: OAuthApi) -> None:
    api.emulator.control.update_settings(server_auth_code_redirect_uris=[""])
    code = api.code()
    refused = api.exchange(code, redirect_uri="postmessage")
    assert refused.status_code == 400
    assert refused.json() == {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
    # A mobile code is not redeemable with the web client's JavaScript origin either.
    assert api.exchange(api.code(), redirect_uri="http://localhost:8080").status_code == 400
    assert api.exchange(api.code(), redirect_uri="").status_code == 200


def test_basic_client_authentication(api: OAuthApi) -> None:
    basic = base64.b64encode(f"{api.web['client_id']}:{api.web['client_secret']}".encode())
    response = api.http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": api.code(), "redirect_uri": ""},
        headers={"Authorization": f"Basic {basic.decode()}"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/o/oauth2/token", "/oauth2/v4/token", "/oauth2/v3/token"])
def test_legacy_token_paths(api: OAuthApi, path: str) -> None:
    form = {
        "grant_type": "authorization_code",
        "code": api.code(),
        "redirect_uri": "",
        "client_id": api.web["client_id"],
        "client_secret": api.web["client_secret"],
    }
    assert api.http.post(path, data=form).status_code == 200


def test_json_body_reads_as_no_grant_type(api: OAuthApi) -> None:
    response = api.http.post("/token", json={"grant_type": "authorization_code"})
    assert error(response) == (
        400,
        {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "},
    )


def test_unknown_grant_type_is_named(api: OAuthApi) -> None:
    response = api.http.post("/token", data={"grant_type": "password"})
    assert error(response) == (
        400,
        {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: password"},
    )


def test_client_checks_come_before_code_checks(api: OAuthApi) -> None:
    bad_code = "4%2F0Anot-a-code"
    no_client = api.http.post("/token", data={"grant_type": "authorization_code", "code": bad_code})
    assert error(no_client) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "Could not determine client ID from request.",
        },
    )
    unknown = api.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": bad_code,
            "client_id": "1-x.apps",
            "client_secret": "s",
        },
    )
    assert error(unknown) == (
        401,
        {"error": "invalid_client", "error_description": "The OAuth client was not found."},
    )
    missing_secret = api.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": bad_code,
            "client_id": api.web["client_id"],
        },
    )
    assert error(missing_secret) == (
        400,
        {"error": "invalid_request", "error_description": "client_secret is missing."},
    )
    wrong_secret = api.exchange(bad_code, client_secret="GOCSPX-wrong")
    assert error(wrong_secret) == (
        401,
        {"error": "invalid_client", "error_description": "Unauthorized"},
    )


def test_code_errors(api: OAuthApi) -> None:
    assert error(api.exchange("")) == (
        400,
        {"error": "invalid_request", "error_description": "Missing required parameter: code"},
    )
    code = api.code()
    for malformed in (code.replace("/", "%2F"), "not-a-code"):
        assert error(api.exchange(malformed)) == (
            400,
            {"error": "invalid_grant", "error_description": "Malformed auth code."},
        )
    assert error(api.exchange("4/0AunknownButWellFormed")) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )


def test_code_is_single_use_and_reuse_message_is_configurable(api: OAuthApi) -> None:
    code = api.code()
    assert api.exchange(code).status_code == 200
    assert error(api.exchange(code)) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )
    api.emulator.control.update_settings(code_reuse_description="Code was already redeemed.")
    assert error(api.exchange(code))[1]["error_description"] == "Code was already redeemed."


def test_reuse_message_is_only_for_an_already_used_code(api: OAuthApi) -> None:
    # Google's "Code was already redeemed." named reuse; unknown, expired and foreign codes
    # stay the generic "Bad Request" (google-protocol.md §3.6).
    api.emulator.control.update_settings(code_reuse_description="Code was already redeemed.")
    generic = (400, {"error": "invalid_grant", "error_description": "Bad Request"})
    assert error(api.exchange("4/0A" + "x" * 70)) == generic
    other = api.emulator.control.create_client("web")["web"]
    foreign = api.emulator.control.server_auth_code(
        api.ios["client_id"], other["client_id"], "alice@example.com"
    )
    assert error(api.exchange(foreign)) == generic
    expiring = api.code()
    api.emulator.control.advance_clock(api.emulator.state.settings.code_ttl + 1)
    assert error(api.exchange(expiring)) == generic
    used = api.code()
    assert api.exchange(used).status_code == 200
    assert error(api.exchange(used))[1]["error_description"] == "Code was already redeemed."


def test_code_expires_on_the_emulator_clock(api: OAuthApi) -> None:
    api.emulator.control.update_settings(code_ttl=60)
    code = api.code()
    api.emulator.control.advance_clock(61)
    assert error(api.exchange(code)) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )


def test_code_of_another_client_is_refused(api: OAuthApi) -> None:
    other = api.emulator.control.create_client("web")["web"]
    code = api.emulator.control.server_auth_code(
        api.ios["client_id"], other["client_id"], "alice@example.com"
    )
    assert error(api.exchange(code)) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )


def test_redirect_uri_rules(api: OAuthApi) -> None:
    code = api.code()
    assert error(api.exchange(code, redirect_uri=REDIRECT)) == (
        400,
        {"error": "redirect_uri_mismatch", "error_description": "Bad Request"},
    )
    assert error(api.exchange(code, redirect_uri=None)) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "Missing required parameter: redirect_uri",
        },
    )
    # A failed redirect check does not burn the code.
    assert api.exchange(code, redirect_uri="").status_code == 200
    # A web page's own popup code (GIS) may also be redeemed with the page's origin.
    web_id = api.web["client_id"]
    popup = api.emulator.control.server_auth_code(web_id, web_id, "alice@example.com")
    assert api.exchange(popup, redirect_uri="http://localhost:8080").status_code == 200


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_pkce(api: OAuthApi) -> None:
    verifier, challenge = _pkce()
    code = api.code(code_challenge=challenge, code_challenge_method="S256")
    assert error(api.exchange(code)) == (
        400,
        {"error": "invalid_grant", "error_description": "Missing code verifier."},
    )
    assert error(api.exchange(code, code_verifier=_pkce()[0])) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid code verifier."},
    )
    assert api.exchange(code, code_verifier=verifier).status_code == 200
    plain = api.code(code_challenge=verifier, code_challenge_method="plain")
    assert api.exchange(plain, code_verifier=verifier).status_code == 200


def test_refresh_answers_without_a_new_refresh_token(api: OAuthApi) -> None:
    first = api.sign_in()
    response = api.refresh(first["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["access_token", "expires_in", "scope", "token_type", "id_token"]
    assert body["access_token"] != first["access_token"]


def test_refresh_errors(api: OAuthApi) -> None:
    first = api.sign_in()
    assert error(api.refresh("")) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "Missing required parameter: refresh_token",
        },
    )
    assert error(api.refresh("1//0unknown")) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    other = api.emulator.control.create_client("web")["web"]
    foreign = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": other["client_id"],
        "client_secret": other["client_secret"],
    }
    assert error(api.http.post("/token", data=foreign)) == (
        401,
        {"error": "unauthorized_client", "error_description": "Unauthorized"},
    )
    api.emulator.control.update_settings(unauthorized_client_status=400)
    assert api.http.post("/token", data=foreign).status_code == 400


def test_refresh_scope_may_narrow_but_not_widen(api: OAuthApi) -> None:
    token = api.sign_in()["refresh_token"]
    narrowed = api.refresh(token, scope=f"email {DRIVE_APPDATA}")
    assert set(narrowed.json()["scope"].split()) == {EMAIL_SCOPE, DRIVE_APPDATA, "openid"}
    widened = api.refresh(token, scope="https://www.googleapis.com/auth/drive")
    assert error(widened) == (400, {"error": "invalid_scope", "error_description": "Bad Request"})
