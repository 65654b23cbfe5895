"""Discovery, certs and key rotation, revoke, tokeninfo and userinfo as Google serves them."""

from __future__ import annotations

import re

import google.auth.exceptions
import pytest
from google.auth import jwt as google_jwt
from google.auth.transport.requests import Request

from grantkeeper.oauth.discovery import parse_provider_metadata

from .oauth_api import OAuthApi

CACHE_CONTROL = re.compile(r"^public, max-age=(\d+), must-revalidate, no-transform$")


def test_discovery_document(api: OAuthApi) -> None:
    response = api.http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    base = api.emulator.base_url
    # Google's document (google-protocol.md §1) with Google's hosts replaced by the emulator.
    assert response.json() == {
        "issuer": base,
        "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
        "device_authorization_endpoint": f"{base}/device/code",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/v1/userinfo",
        "revocation_endpoint": f"{base}/revoke",
        "jwks_uri": f"{base}/oauth2/v3/certs",
        "response_types_supported": [
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
            "none",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "aud",
            "email",
            "email_verified",
            "exp",
            "family_name",
            "given_name",
            "iat",
            "iss",
            "name",
            "picture",
            "sub",
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    }
    # The keeper's own parser takes it as it takes Google's.
    metadata = parse_provider_metadata(response.json(), issuer=base)
    assert (metadata.token_endpoint, metadata.jwks_uri) == (
        f"{base}/token",
        f"{base}/oauth2/v3/certs",
    )
    api.emulator.control.update_settings(include_locale_claim=True)
    claims = api.http.get("/.well-known/openid-configuration").json()["claims_supported"]
    assert "locale" in claims


def test_certs_have_googles_shape_and_cache_headers(api: OAuthApi) -> None:
    jwks = api.http.get("/oauth2/v3/certs")
    pem = api.http.get("/oauth2/v1/certs")
    keys = jwks.json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert set(key) == {"kty", "alg", "use", "kid", "n", "e"}
        assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
        assert re.fullmatch(r"[0-9a-f]{40}", key["kid"])
        assert len(key["n"]) == 342  # RSA-2048
    assert set(pem.json()) == {k["kid"] for k in keys}
    assert all(v.startswith("-----BEGIN CERTIFICATE-----\n") for v in pem.json().values())
    for response in (jwks, pem):
        match = CACHE_CONTROL.match(response.headers["cache-control"])
        assert match is not None
        assert int(match.group(1)) == 21155
        assert "expires" in response.headers


def _kid(token: str) -> str:
    header = google_jwt.decode_header(token)
    kid: str = header["kid"]
    return kid


def test_key_rotation_as_a_verifier_sees_it(api: OAuthApi) -> None:
    before = api.sign_in()["id_token"]
    published = api.emulator.control.keys()["kids"]
    assert _kid(before) == published[-1]

    keys = api.emulator.control.rotate_keys(overlap_seconds=86400)
    assert len(keys["kids"]) == 3
    assert keys["kids"][:2] == published
    after = api.sign_in("bob@example.com")["id_token"]
    assert _kid(after) == keys["signing_kid"] == keys["kids"][2]
    # During the overlap both the old and the new signatures verify, and caches are told to
    # come back before the oldest key goes.
    api.verify_id_token(before)
    api.verify_id_token(after)
    max_age = CACHE_CONTROL.match(api.http.get("/oauth2/v3/certs").headers["cache-control"])
    assert max_age is not None
    assert int(max_age.group(1)) <= 21155

    api.emulator.control.advance_clock(86400)
    assert api.emulator.control.keys()["kids"] == keys["kids"][1:]
    api.verify_id_token(before)  # signed by the second key, still published
    api.verify_id_token(after)

    old_signed = api.emulator.state.keys.sign(
        {"iss": "x", "aud": api.web["client_id"], "iat": 0, "exp": 2**31},
        key=api.emulator.state.keys.all_keys()[0],
    )
    with pytest.raises(ValueError, match=r"Certificate for key id .* not found"):
        api.verify_id_token(old_signed)


def test_rotations_inside_one_overlap_still_end_at_two_keys(api: OAuthApi) -> None:
    control = api.emulator.control
    start = control.keys()["kids"]
    kids = [control.rotate_keys(overlap_seconds=3600)["signing_kid"] for _ in range(3)]
    # Each rotation retires the oldest key not yet retiring, so nothing outlives the overlap.
    assert control.keys()["kids"] == [*start, *kids]
    control.advance_clock(3600)
    assert control.keys()["kids"] == kids[-2:]
    assert [k["kid"] for k in api.http.get("/oauth2/v3/certs").json()["keys"]] == kids[-2:]


def test_revoke(api: OAuthApi) -> None:
    body = api.sign_in()
    assert api.http.get("/revoke", params={"token": body["access_token"]}).status_code == 404
    # Revoking the access token (in the query, as Google's docs show) kills the refresh token.
    revoked = api.http.post("/revoke", params={"token": body["access_token"]})
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert api.refresh(body["refresh_token"]).status_code == 400
    again = api.http.post("/revoke", data={"token": body["refresh_token"]})
    assert (again.status_code, again.json()) == (
        400,
        {"error": "invalid_token", "error_description": "Token expired or revoked"},
    )
    missing = api.http.post("/revoke")
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    # The legacy host accepted GET.
    fresh = api.sign_in(prompt="consent")
    assert (
        api.http.get("/o/oauth2/revoke", params={"token": fresh["refresh_token"]}).status_code
        == 200
    )


def test_tokeninfo_for_access_and_id_tokens(api: OAuthApi) -> None:
    body = api.sign_in()
    info = api.http.get("/tokeninfo", params={"access_token": body["access_token"]}).json()
    assert info["aud"] == api.web["client_id"]
    assert info["azp"] == api.ios["client_id"]
    assert info["email"] == "alice@example.com"
    assert info["email_verified"] == "true"
    assert info["access_type"] == "offline"
    assert all(isinstance(v, str) for v in info.values())
    assert "openid" in info["scope"].split()
    by_header = api.http.post(
        "/tokeninfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert by_header.json()["sub"] == info["sub"]

    claims = api.http.get("/tokeninfo", params={"id_token": body["id_token"]}).json()
    assert claims["sub"] == info["sub"]
    assert claims["email_verified"] == "true"
    assert claims["alg"] == "RS256"
    assert claims["iat"].isdigit()
    tampered = body["id_token"][:-4] + ("AAAA" if not body["id_token"].endswith("AAAA") else "BBBB")
    bad = api.http.get("/tokeninfo", params={"id_token": tampered})
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "invalid_token", "error_description": "Invalid Value"},
    )
    nothing = api.http.get("/tokeninfo")
    assert nothing.json() == {
        "error": "invalid_request",
        "error_description": "Either access_token, id_token, or token_handle required",
    }


def test_userinfo_follows_the_granted_scopes(api: OAuthApi) -> None:
    full = api.sign_in("grace.hopper@example.com")
    me = api.http.get("/v1/userinfo", headers={"Authorization": f"Bearer {full['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "sub": me.json()["sub"],
        "name": "Grace Hopper",
        "given_name": "Grace",
        "family_name": "Hopper",
        "picture": me.json()["picture"],
        "email": "grace.hopper@example.com",
        "email_verified": True,
    }
    email_only = api.sign_in("heidi@gmail.com", scopes=["email"])
    v3 = api.http.get(
        "/oauth2/v3/userinfo", headers={"Authorization": f"Bearer {email_only['access_token']}"}
    )
    assert set(v3.json()) == {"sub", "email", "email_verified"}  # no name, no hd for gmail.com


def test_hd_only_for_a_workspace_user_made_so(api: OAuthApi) -> None:
    # Google sets hd only for Workspace accounts (google-protocol.md §4.2): a user whose email is
    # on some domain is a consumer account unless created with hd.
    consumer = api.verify_id_token(api.sign_in("grace.hopper@example.com")["id_token"])
    assert "hd" not in consumer
    assert api.emulator.control.create_user("ada@corp.example", hd="corp.example")["hd"] == (
        "corp.example"
    )
    body = api.sign_in("ada@corp.example")
    assert api.verify_id_token(body["id_token"])["hd"] == "corp.example"
    me = api.http.get("/v1/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["hd"] == "corp.example"


def test_userinfo_rejects_a_bad_token(api: OAuthApi) -> None:
    response = api.http.get("/v1/userinfo", headers={"Authorization": "Bearer ya29.nope"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Invalid Credentials",
    }
    assert response.headers["www-authenticate"].startswith(
        'Bearer realm="https://accounts.google.com/"'
    )


def test_no_fastapi_422_on_google_endpoints(api: OAuthApi) -> None:
    for path in ("/token", "/revoke", "/tokeninfo"):
        response = api.http.post(
            path,
            content=b"\xff\xfe not a form",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code in (400, 401)
        assert "detail" not in response.json()


def test_google_auth_refresh_error_for_unknown_client(api: OAuthApi) -> None:
    from google.oauth2.credentials import Credentials

    creds = Credentials(
        None,
        refresh_token="1//0x",
        token_uri=f"{api.emulator.base_url}/token",
        client_id="nobody",
        client_secret="s",
    )
    with pytest.raises(
        google.auth.exceptions.RefreshError, match=r"invalid_client: The OAuth client was not found"
    ):
        creds.refresh(Request())


def test_unconfirmed_shapes_are_settings(api: OAuthApi) -> None:
    api.emulator.control.update_settings(
        revoke_success_body="", tokeninfo_id_token_header=False, server_code_azp="server"
    )
    body = api.sign_in()
    claims = api.http.get("/tokeninfo", params={"id_token": body["id_token"]}).json()
    assert "alg" not in claims
    assert claims["azp"] == api.web["client_id"]
    revoked = api.http.post("/revoke", data={"token": body["access_token"]})
    assert (revoked.status_code, revoked.content) == (200, b"")
