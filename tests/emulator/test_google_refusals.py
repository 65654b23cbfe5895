"""Google's refusals and shapes that a test would otherwise only meet at Google (issue 11)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
import requests
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from .oauth_api import REDIRECT, OAuthApi

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


@pytest.mark.parametrize(
    ("scope", "invalid"),
    [
        ("openid email drive.appdata", "drive.appdata"),  # short form
        (
            "openid email https://www.googleapis.com/auth/nonsense!",
            "https://www.googleapis.com/auth/nonsense!",
        ),
        (
            "openid email https://www.googleapis.com/auth/photoslibrary",
            "https://www.googleapis.com/auth/photoslibrary",
        ),
        ("openid email made-up", "made-up"),
    ],
)
def test_consent_page_refuses_invalid_scopes(api: OAuthApi, scope: str, invalid: str) -> None:
    query = urlencode(
        {
            "client_id": api.web["client_id"],
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": scope,
        }
    )
    page = api.http.get("/o/oauth2/v2/auth?" + query)
    assert page.status_code == 400
    assert "invalid_scope" in page.text
    expected = (
        "Some requested scopes were invalid. {valid=[openid, "
        f"https://www.googleapis.com/auth/userinfo.email], invalid=[{invalid}]}}"
    )
    assert expected in page.text


def test_valid_scopes_pass(api: OAuthApi) -> None:
    query = urlencode(
        {
            "client_id": api.web["client_id"],
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": f"openid email profile {DRIVE_APPDATA} https://mail.google.com/",
        }
    )
    assert api.http.get("/o/oauth2/v2/auth?" + query).status_code == 200


def test_testing_mode_reports_refresh_token_expiry(api: OAuthApi) -> None:
    api.emulator.control.update_settings(testing_mode=True)
    assert api.sign_in()["refresh_token_expires_in"] == 604799


def test_both_issuer_forms(api: OAuthApi) -> None:
    api.emulator.control.update_settings(
        issuer="https://accounts.google.com", id_token_iss_form="alternate"
    )
    seen = set()
    for _ in range(2):
        claims = api.verify_id_token(api.sign_in()["id_token"])
        seen.add(claims["iss"])
    assert seen == {"https://accounts.google.com", "accounts.google.com"}
    api.emulator.control.update_settings(id_token_iss_form="bare")
    assert api.verify_id_token(api.sign_in()["id_token"])["iss"] == "accounts.google.com"


def test_moved_clock_and_real_clock_verifiers(api: OAuthApi) -> None:
    """After the clock moves, ID tokens are stamped with the emulator's time, which a verifier
    on the system clock refuses; ``id_token_clock="system"`` stamps them with real time."""
    api.emulator.control.advance_clock(7200)
    moved = api.sign_in()["id_token"]
    certs = api.emulator.base_url + "/oauth2/v1/certs"
    with requests.Session() as session:
        request = Request(session)
        with pytest.raises(ValueError, match="Token used too early"):
            id_token.verify_token(moved, request, api.web["client_id"], certs_url=certs)
        api.emulator.control.update_settings(id_token_clock="system")
        claims = id_token.verify_token(
            api.sign_in()["id_token"], request, api.web["client_id"], certs_url=certs
        )
    assert abs(claims["iat"] - time.time()) < 60


def _app_data_file(api: OAuthApi) -> tuple[dict[str, str], str]:
    token = api.sign_in(scopes=["openid", "email", DRIVE_APPDATA])["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = api.http.post(
        "/drive/v3/files", headers=headers, json={"name": "a.json", "parents": ["appDataFolder"]}
    )
    assert created.status_code == 200, created.text
    return headers, created.json()["id"]


NOT_SUPPORTED = {
    "error": {
        "code": 403,
        "message": "Method not supported for files within the Application Data folder.",
        "errors": [
            {
                "domain": "global",
                "reason": "notSupportedForAppDataFolderFiles",
                "message": "Method not supported for files within the Application Data folder.",
            }
        ],
    }
}


def test_app_data_files_cannot_be_trashed_moved_or_shared(api: OAuthApi) -> None:
    headers, file_id = _app_data_file(api)
    trash = api.http.patch(f"/drive/v3/files/{file_id}", headers=headers, json={"trashed": True})
    move = api.http.patch(
        f"/drive/v3/files/{file_id}",
        headers=headers,
        params={"addParents": "root", "removeParents": "appDataFolder"},
        json={},
    )
    share = api.http.post(
        f"/drive/v3/files/{file_id}/permissions",
        headers=headers,
        json={"role": "reader", "type": "anyone"},
    )
    for answer in (trash, move, share):
        assert answer.status_code == 403
        assert answer.json() == NOT_SUPPORTED
    renamed = api.http.patch(f"/drive/v3/files/{file_id}", headers=headers, json={"name": "b"})
    assert renamed.status_code == 200  # the file is unharmed and still editable


def test_unimplemented_paths_answer_googles_envelope(api: OAuthApi) -> None:
    for path in ("/drive/v3/about", "/v1/sharedAlbums", "/nothing/here"):
        answer = api.http.get(path)
        assert answer.status_code == 404
        assert answer.json() == {
            "error": {"code": 404, "message": "Method not found.", "status": "NOT_FOUND"}
        }
    control = api.http.get("/emulator/nothing")
    assert control.status_code == 404
    assert control.json()["error"] == "not_found"


def test_request_log_names_clients_and_never_tokens(api: OAuthApi) -> None:
    signed_in = api.sign_in(scopes=["openid", "email", DRIVE_APPDATA])
    token = signed_in["access_token"]
    api.http.get("/drive/v3/files", params={"spaces": "appDataFolder", "access_token": token})
    api.http.get("/tokeninfo", params={"access_token": "ya29.unknown-token"})
    api.http.get("/nothing/here")
    log = api.http.get("/emulator/requests").json()
    text = str(log)
    assert token not in text
    assert signed_in["refresh_token"] not in text
    assert "ya29.unknown-token" not in text
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/token", 200),
        ("GET", "/drive/v3/files", 200),
        ("GET", "/tokeninfo", 400),
        ("GET", "/nothing/here", 404),
    ]
    assert log[0]["client_id"] == api.web["client_id"]  # from the form
    assert log[1]["client_id"] == api.web["client_id"]  # from the bearer token
    assert log[3]["client_id"] is None
    assert [e["path"] for e in api.http.get("/emulator/requests?limit=1").json()] == [
        "/nothing/here"
    ]
    assert api.http.delete("/emulator/requests").json() == {"cleared": 4}
