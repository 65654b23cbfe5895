"""The emulator over HTTPS, and each client library pointed at it with its CA and no insecure flag.

Every library here is used as its own documentation shows, with only two changes: the URLs (the
emulator's) and the CA file to trust (``ca.pem``). ``OAUTHLIB_INSECURE_TRANSPORT`` is never set.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_auth_httplib2
import httplib2
import httpx
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.http import MediaInMemoryUpload, build_http
from oauth2client import client as oauth2client

from grantkeeper.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from grantkeeper.emulator.tls import local_ca

SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]
REDIRECT = "https://127.0.0.1:8443/callback"
DISCOVERY = "/discovery/v1/apis/{api}/{apiVersion}/rest"


@pytest.fixture(autouse=True)
def _no_insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    # requests lets these variables override Session.verify (docs/emulator.md says so); a
    # machine without them is what the session-level examples are for.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def served(emulator_https_session: EmulatorHandle) -> EmulatorHandle:
    """The plugin's HTTPS emulator (grantkeeper.emulator.testing)."""
    return emulator_https_session


@pytest.fixture
def tls_dir(served: EmulatorHandle) -> Path:
    assert served.ca_path is not None
    return served.ca_path.parent


@pytest.fixture
def emu(emulator_https: EmulatorHandle) -> EmulatorHandle:
    return emulator_https


@pytest.fixture
def ca(emu: EmulatorHandle) -> str:
    assert emu.ca_path is not None
    return str(emu.ca_path)


@pytest.fixture
def web(emu: EmulatorHandle) -> dict[str, Any]:
    client: dict[str, Any] = emu.control.create_client("web", redirect_uris=[REDIRECT])["web"]
    return client


def _code(emu: EmulatorHandle, web: dict[str, Any], email: str = "alice@example.com") -> str:
    ios = emu.control.create_client("ios")
    return emu.control.server_auth_code(ios["client_id"], web["client_id"], email, scopes=SCOPES)


def _secrets_file(tmp_path: Path, web: dict[str, Any]) -> str:
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps({"web": web}))
    return str(path)


def test_served_over_https_with_the_ca_in_the_data_dir(emu: EmulatorHandle, tls_dir: Path) -> None:
    assert emu.base_url.startswith("https://127.0.0.1:")
    assert emu.ca_path == tls_dir / "ca.pem"
    assert stat.S_IMODE(os.stat(tls_dir / "ca-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tls_dir / "server-key.pem").st_mode) == 0o600
    with httpx.Client(verify=emu.ssl_context() or False) as http:
        served_ca = http.get(emu.base_url + "/emulator/ca.pem")
        discovery = http.get(emu.base_url + "/.well-known/openid-configuration").json()
        drive = http.get(emu.base_url + "/discovery/v1/apis/drive/v3/rest").json()
    assert served_ca.status_code == 200
    assert served_ca.content == (tls_dir / "ca.pem").read_bytes()
    assert served_ca.headers["content-type"] == "application/x-pem-file"
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert discovery[key].startswith(emu.base_url), key
    assert drive["rootUrl"] == emu.base_url + "/"
    # Without the CA, a client refuses the emulator as it would refuse an impostor.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(emu.base_url + "/.well-known/openid-configuration")


def test_the_ca_is_kept_across_restarts(tls_dir: Path, served: EmulatorHandle) -> None:
    first = (tls_dir / "ca.pem").read_bytes()
    with run_emulator(EmulatorConfig(https=True, data_dir=tls_dir)) as again:
        assert again.control.http.get("/emulator/ca.pem").content == first
    assert local_ca(tls_dir).cert_pem.bytes() == first


def test_plain_http_emulator_has_no_ca(emulator: EmulatorHandle) -> None:
    answer = emulator.control.http.get("/emulator/ca.pem")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_https"
    assert "--https" in answer.json()["error_description"]


def test_requests_and_google_auth(emu: EmulatorHandle, web: dict[str, Any], ca: str) -> None:
    session = requests.Session()
    session.verify = ca
    answer = session.post(
        emu.base_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": _code(emu, web),
            "redirect_uri": "",
            "client_id": web["client_id"],
            "client_secret": web["client_secret"],
        },
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    request = Request(session)
    claims = id_token.verify_token(
        tokens["id_token"],
        request,
        audience=web["client_id"],
        certs_url=emu.base_url + "/oauth2/v1/certs",
    )
    assert claims["email"] == "alice@example.com"
    creds = Credentials(
        None,
        refresh_token=tokens["refresh_token"],
        token_uri=web["token_uri"],
        client_id=web["client_id"],
        client_secret=web["client_secret"],
    )
    creds.refresh(request)
    assert creds.valid
    with AuthorizedSession(creds) as authed:
        authed.verify = ca
        profile = authed.get(emu.base_url + "/oauth2/v2/userinfo")
    session.close()
    assert profile.status_code == 200
    assert profile.json()["email"] == "alice@example.com"


def test_googleapiclient_media_uploads_to_app_data_folder(
    emu: EmulatorHandle, web: dict[str, Any], ca: str
) -> None:
    session = requests.Session()
    session.verify = ca
    tokens = session.post(
        web["token_uri"],
        data={
            "grant_type": "authorization_code",
            "code": _code(emu, web),
            "redirect_uri": "",
            "client_id": web["client_id"],
            "client_secret": web["client_secret"],
        },
    ).json()
    creds = Credentials(
        tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_uri=web["token_uri"],
        client_id=web["client_id"],
        client_secret=web["client_secret"],
    )
    # build_http() is what build() makes by itself: httplib2 that does not follow the 308 of a
    # resumable upload. Only the CA is added.
    plain = build_http()
    plain.ca_certs = ca
    http = google_auth_httplib2.AuthorizedHttp(creds, http=plain)
    drive = build(
        "drive",
        "v3",
        http=http,
        discoveryServiceUrl=emu.base_url + DISCOVERY,
        static_discovery=False,
        cache_discovery=False,
    )
    metadata = {"name": "settings.json", "parents": ["appDataFolder"]}
    multipart = drive.files().create(
        body=metadata,
        media_body=MediaInMemoryUpload(b'{"theme": "dark"}', mimetype="application/json"),
        fields="id,name,parents",
    )
    assert multipart.uri.startswith(emu.base_url + "/upload/drive/v3/files")
    created = multipart.execute()
    big = os.urandom(300_000)
    resumable = drive.files().create(
        body={"name": "photo.bin", "parents": ["appDataFolder"]},
        media_body=MediaInMemoryUpload(
            big, mimetype="application/octet-stream", chunksize=256 * 1024, resumable=True
        ),
        fields="id",
    )
    uploaded = resumable.execute()
    listing = drive.files().list(spaces="appDataFolder", fields="files(id,name)").execute()
    names = {f["name"] for f in listing["files"]}
    assert names == {"settings.json", "photo.bin"}
    assert created["name"] == "settings.json"
    assert drive.files().get_media(fileId=uploaded["id"]).execute() == big
    assert drive.files().get_media(fileId=created["id"]).execute() == b'{"theme": "dark"}'
    drive.close()
    plain.close()


def test_oauth2client_exchanges_a_code(
    emu: EmulatorHandle, web: dict[str, Any], ca: str, tmp_path: Path
) -> None:
    http = httplib2.Http(ca_certs=ca)
    credentials = oauth2client.credentials_from_clientsecrets_and_code(
        _secrets_file(tmp_path, web),
        SCOPES,
        _code(emu, web, "bob@example.com"),
        redirect_uri="",
        http=http,
    )
    http.close()
    assert credentials.id_token["email"] == "bob@example.com"
    assert credentials.refresh_token


def test_google_auth_oauthlib_flow_without_insecure_transport(
    emu: EmulatorHandle, web: dict[str, Any], ca: str, tmp_path: Path
) -> None:
    flow = Flow.from_client_secrets_file(
        _secrets_file(tmp_path, web),
        scopes=[
            "openid",
            "https://www.googleapis.com/auth/userinfo.email",
            "https://www.googleapis.com/auth/drive.appdata",
        ],
        redirect_uri=REDIRECT,
    )
    flow.oauth2session.verify = ca
    auth_url, state = flow.authorization_url(access_type="offline", prompt="consent")
    assert auth_url.startswith(emu.base_url + "/o/oauth2/auth?")
    location = emu.control.authorize(auth_url, "carol@example.com")
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token = flow.fetch_token(authorization_response=location)
    assert token["refresh_token"].startswith("1//")
    assert flow.credentials.token == token["access_token"]


def test_authlib_oauth2_session(emu: EmulatorHandle, web: dict[str, Any], ca: str) -> None:
    discovery = requests.get(emu.base_url + "/.well-known/openid-configuration", verify=ca).json()
    session = OAuth2Session(
        web["client_id"],
        web["client_secret"],
        scope="openid email https://www.googleapis.com/auth/drive.appdata",
        redirect_uri=REDIRECT,
    )
    session.verify = ca
    url, state = session.create_authorization_url(
        discovery["authorization_endpoint"], access_type="offline", prompt="consent"
    )
    location = emu.control.authorize(url, "dave@example.com")
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=location)
    assert token["refresh_token"].startswith("1//")
    profile = session.get(discovery["userinfo_endpoint"]).json()
    assert profile["email"] == "dave@example.com"


def test_httpx_with_the_ca(emu: EmulatorHandle, web: dict[str, Any], ca: str) -> None:
    context = ssl.create_default_context(cafile=ca)
    with httpx.Client(base_url=emu.base_url, verify=context) as http:
        tokens = http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": _code(emu, web),
                "redirect_uri": "",
                "client_id": web["client_id"],
                "client_secret": web["client_secret"],
            },
        ).json()
        info = http.get("/tokeninfo", params={"access_token": tokens["access_token"]})
    assert info.status_code == 200
    assert info.json()["aud"] == web["client_id"]
