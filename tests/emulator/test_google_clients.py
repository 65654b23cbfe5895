"""Google's own client libraries against the running emulator, unmodified except for URLs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import google.auth.exceptions
import httplib2
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from oauth2client import client as oauth2client

from grantkeeper.emulator import EmulatorHandle

from .oauth_api import REDIRECT, OAuthApi


def credentials(api: OAuthApi, refresh_token: str, **kw: object) -> Credentials:
    return Credentials(
        None,
        refresh_token=refresh_token,
        token_uri=f"{api.emulator.base_url}/token",
        client_id=api.web["client_id"],
        client_secret=api.web["client_secret"],
        **kw,
    )


def test_google_auth_credentials_refresh(api: OAuthApi) -> None:
    signed_in = api.sign_in()
    creds = credentials(api, signed_in["refresh_token"])
    creds.refresh(Request())
    assert creds.token.startswith("ya29.")
    assert creds.token != signed_in["access_token"]
    assert creds.valid
    assert creds.id_token is not None
    assert creds.refresh_token == signed_in["refresh_token"]  # Google does not rotate
    assert api.emulator.state.lookup_access_token(creds.token) is not None


def test_google_auth_refresh_after_revocation(api: OAuthApi) -> None:
    token = api.sign_in()["refresh_token"]
    assert api.http.post("/revoke", data={"token": token}).status_code == 200
    with pytest.raises(google.auth.exceptions.RefreshError) as raised:
        credentials(api, token).refresh(Request())
    assert raised.value.args[0] == "invalid_grant: Token has been expired or revoked."


@pytest.mark.parametrize("certs", ["/oauth2/v1/certs", "/oauth2/v3/certs"])
def test_verify_token_against_both_certs_endpoints(api: OAuthApi, certs: str) -> None:
    signed_in = api.sign_in("dana.smith@example.com")
    claims = id_token.verify_token(
        signed_in["id_token"],
        Request(),
        audience=api.web["client_id"],
        certs_url=api.emulator.base_url + certs,
    )
    assert claims["iss"] == api.emulator.base_url
    assert claims["aud"] == api.web["client_id"]
    assert claims["azp"] == api.ios["client_id"]
    assert claims["email"] == "dana.smith@example.com"
    assert claims["email_verified"] is True
    assert claims["given_name"] == "Dana"
    assert claims["family_name"] == "Smith"
    assert "hd" not in claims  # a consumer account: no Workspace domain
    assert len(claims["sub"]) == 21
    assert claims["sub"].isdigit()
    assert claims["exp"] - claims["iat"] == 3600


def test_verify_oauth2_token_when_signing_as_google(
    api: OAuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in = api.sign_in()
    monkeypatch.setattr(
        id_token, "_GOOGLE_OAUTH2_CERTS_URL", f"{api.emulator.base_url}/oauth2/v1/certs"
    )
    # With the default issuer (the emulator's URL) Google's helper refuses the token ...
    with pytest.raises(google.auth.exceptions.GoogleAuthError, match="Wrong issuer"):
        id_token.verify_oauth2_token(signed_in["id_token"], Request(), api.web["client_id"])
    # ... and accepts it once the emulator signs as https://accounts.google.com.
    api.emulator.control.update_settings(issuer="https://accounts.google.com")
    claims = id_token.verify_oauth2_token(
        api.sign_in()["id_token"], Request(), api.web["client_id"]
    )
    assert claims["iss"] == "https://accounts.google.com"
    discovery = api.http.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == "https://accounts.google.com"
    assert discovery["token_endpoint"] == f"{api.emulator.base_url}/token"


@pytest.fixture
def http() -> Iterator[httplib2.Http]:
    """oauth2client's transport, closed afterwards (its sockets would otherwise leak)."""
    transport = httplib2.Http()
    yield transport
    transport.close()


def test_seed_python_fragment_with_oauth2client(
    api: OAuthApi, tmp_path: Path, http: httplib2.Http
) -> None:
    """The sample of Google's guide as written: client secrets file, code, id_token['sub']."""
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps({"web": api.web}))
    auth_code = api.code("erin@example.com")

    credentials = oauth2client.credentials_from_clientsecrets_and_code(
        str(secrets_file),
        ["https://www.googleapis.com/auth/drive.appdata", "profile", "email"],
        auth_code,
        http=http,
    )
    userid = credentials.id_token["sub"]
    email = credentials.id_token["email"]

    assert email == "erin@example.com"
    assert api.emulator.state.user_by_email(email).sub == userid  # type: ignore[union-attr]
    assert credentials.refresh_token.startswith("1//")
    # oauth2client verifies ID tokens against the x509 certificates of /oauth2/v1/certs.
    verified = oauth2client.verify_id_token(
        credentials.id_token_jwt,
        api.web["client_id"],
        http=http,
        cert_uri=f"{api.emulator.base_url}/oauth2/v1/certs",
    )
    assert verified["sub"] == userid


def test_oauth2client_shows_googles_error_text(
    api: OAuthApi, tmp_path: Path, http: httplib2.Http
) -> None:
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps({"web": api.web}))
    with pytest.raises(oauth2client.FlowExchangeError) as raised:
        oauth2client.credentials_from_clientsecrets_and_code(
            str(secrets_file), ["email"], "4%2F0Aencoded", http=http
        )
    assert str(raised.value) == "invalid_grantMalformed auth code."


def _flow(emulator: EmulatorHandle, api: OAuthApi) -> Flow:
    config = {"web": api.web}
    return Flow.from_client_config(
        config,
        scopes=["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"],
        redirect_uri=REDIRECT,
    )


def test_google_auth_oauthlib_flow_with_the_consent_page(
    api: OAuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain HTTP
    flow = _flow(api.emulator, api)
    auth_url, state = flow.authorization_url(access_type="offline", prompt="consent")
    assert auth_url.startswith(f"{api.emulator.base_url}/o/oauth2/auth?")
    location = api.emulator.control.authorize(auth_url, "frank@example.com")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT + "?")
    assert query["state"] == [state]

    # Google answers with normalised scopes (userinfo.email for email, ...), which oauthlib
    # treats as a scope change unless OAUTHLIB_RELAX_TOKEN_SCOPE is set.
    with pytest.raises(Warning, match="Scope has changed"):
        flow.fetch_token(code=query["code"][0])

    location = api.emulator.control.authorize(
        flow.authorization_url(prompt="consent")[0], "frank@example.com"
    )
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    token = flow.fetch_token(code=parse_qs(urlsplit(location).query)["code"][0])
    assert token["access_token"].startswith("ya29.")
    assert token["refresh_token"].startswith("1//")
    assert flow.credentials.token == token["access_token"]
