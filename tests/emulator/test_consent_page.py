"""The browser consent page, driven over plain HTTP: the form as a browser would submit it."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .oauth_api import REDIRECT, OAuthApi

DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"


def auth_url(api: OAuthApi, **params: str) -> str:
    query = {
        "client_id": api.web["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": f"openid email profile {DRIVE_FILE}",
        "state": "xyz-123",
        **params,
    }
    return f"/o/oauth2/v2/auth?{urlencode(query)}"


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(api: OAuthApi, code: str, **extra: str) -> httpx.Response:
    return api.exchange(code, redirect_uri=REDIRECT, **extra)


def test_page_then_form_post_then_code(api: OAuthApi) -> None:
    page = api.http.get(auth_url(api, access_type="offline", nonce="n-0S6"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert DRIVE_FILE in page.text
    fields = form_fields(page.text)
    answer = api.http.post(
        "/o/oauth2/v2/auth",
        data={
            **fields,
            "email": "",
            "new_email": "ivan@example.com",
            "action": "allow",
            "scope": DRIVE_FILE,
        },
    )
    query = redirect_query(answer)
    assert query["state"] == "xyz-123"
    assert DRIVE_FILE in query["scope"].split()
    body = exchange(api, query["code"]).json()
    assert "refresh_token" in body
    claims = api.http.get("/tokeninfo", params={"id_token": body["id_token"]}).json()
    assert claims["nonce"] == "n-0S6"
    assert claims["email"] == "ivan@example.com"
    assert claims["azp"] == claims["aud"] == api.web["client_id"]


def test_unticked_scope_is_not_granted(api: OAuthApi) -> None:
    location = api.emulator.control.authorize(auth_url(api), "judy@example.com", keep_scopes=[])
    code = parse_qs(urlsplit(location).query)["code"][0]
    body = exchange(api, code).json()
    assert DRIVE_FILE not in body["scope"].split()
    assert "openid" in body["scope"].split()
    assert "refresh_token" not in body  # no access_type=offline


def test_browser_codes_need_their_exact_redirect_uri(api: OAuthApi) -> None:
    location = api.emulator.control.authorize(auth_url(api), "judy@example.com")
    code = parse_qs(urlsplit(location).query)["code"][0]
    mismatch = api.exchange(code, redirect_uri="")
    assert (mismatch.status_code, mismatch.json()) == (
        400,
        {"error": "redirect_uri_mismatch", "error_description": "Bad Request"},
    )
    assert exchange(api, code).status_code == 200


def test_login_hint_preselects_the_user(api: OAuthApi) -> None:
    api.emulator.control.create_user("kim@example.com")
    page = api.http.get(auth_url(api, login_hint="kim@example.com"))
    assert re.search(r'value="kim@example.com" checked', page.text)
    unknown = api.http.get(auth_url(api, login_hint="new.person@example.com"))
    assert 'value="new.person@example.com"' in unknown.text


def test_a_new_account_is_a_consumer_account_unless_given_a_workspace_domain(
    api: OAuthApi,
) -> None:
    page = api.http.get(auth_url(api))
    assert 'name="new_hd"' in page.text
    consumer = redirect_query_of(api, "lee@example.com")
    workspace = redirect_query_of(api, "max@corp.example", new_hd="corp.example")
    claims = [
        api.http.get("/tokeninfo", params={"id_token": exchange(api, q["code"]).json()["id_token"]})
        for q in (consumer, workspace)
    ]
    assert "hd" not in claims[0].json()
    assert claims[1].json()["hd"] == "corp.example"
    # The control client's helper does the same.
    location = api.emulator.control.authorize(auth_url(api), "uma@corp.example", hd="corp.example")
    assert "code=" in location
    assert api.emulator.state.user_by_email("uma@corp.example").hd == "corp.example"  # type: ignore[union-attr]


def redirect_query_of(api: OAuthApi, email: str, **extra: str) -> dict[str, str]:
    fields = form_fields(api.http.get(auth_url(api)).text)
    answer = api.http.post(
        "/o/oauth2/v2/auth",
        data={**fields, "email": "", "new_email": email, "action": "allow", **extra},
    )
    return redirect_query(answer)


def test_deny(api: OAuthApi) -> None:
    location = api.emulator.control.authorize(auth_url(api), "leo@example.com", deny=True)
    assert parse_qs(urlsplit(location).query) == {"error": ["access_denied"], "state": ["xyz-123"]}


def test_prompt_consent_and_include_granted_scopes(api: OAuthApi) -> None:
    offline = {"access_type": "offline"}
    first = api.emulator.control.authorize(auth_url(api, **offline), "mia@example.com")
    assert "refresh_token" in exchange(api, parse_qs(urlsplit(first).query)["code"][0]).json()
    again = api.emulator.control.authorize(
        auth_url(api, scope="email", **offline), "mia@example.com"
    )
    body = exchange(api, parse_qs(urlsplit(again).query)["code"][0]).json()
    assert "refresh_token" not in body
    assert DRIVE_FILE not in body["scope"]
    incremental = api.emulator.control.authorize(
        auth_url(api, scope="email", include_granted_scopes="true", prompt="consent", **offline),
        "mia@example.com",
    )
    body = exchange(api, parse_qs(urlsplit(incremental).query)["code"][0]).json()
    assert "refresh_token" in body
    assert DRIVE_FILE in body["scope"].split()


def test_prompt_none(api: OAuthApi) -> None:
    none = api.http.get(auth_url(api, prompt="none", login_hint="noone@example.com"))
    assert redirect_query(none)["error"] == "login_required"
    api.emulator.control.authorize(auth_url(api), "nina@example.com")
    silent = api.http.get(auth_url(api, prompt="none", login_hint="nina@example.com"))
    assert "code" in redirect_query(silent)
    wider = api.http.get(
        auth_url(
            api,
            prompt="none",
            login_hint="nina@example.com",
            scope="https://www.googleapis.com/auth/drive",
        )
    )
    assert redirect_query(wider)["error"] == "consent_required"


def test_pkce_through_the_page(api: OAuthApi) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    url = auth_url(
        api, code_challenge=challenge.rstrip(b"=").decode(), code_challenge_method="S256"
    )
    code = parse_qs(urlsplit(api.emulator.control.authorize(url, "olga@example.com")).query)
    assert exchange(api, code["code"][0]).json()["error_description"] == "Missing code verifier."
    assert exchange(api, code["code"][0], code_verifier=verifier).status_code == 200


def test_native_client_without_secret(api: OAuthApi) -> None:
    redirect = f"com.googleusercontent.apps.{api.ios['client_id'].split('.')[0]}:/oauth2redirect"
    url = "/o/oauth2/v2/auth?" + urlencode(
        {
            "client_id": api.ios["client_id"],
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "openid email",
        }
    )
    location = api.emulator.control.authorize(url, "pat@example.com")
    code = parse_qs(urlsplit(location).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": api.ios["client_id"],
    }
    body = api.http.post("/token", data=form).json()
    assert "refresh_token" in body  # native apps always get one
    again = api.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "client_id": api.ios["client_id"],
            "refresh_token": body["refresh_token"],
        },
    )
    assert again.status_code == 200


def test_error_pages_never_redirect(api: OAuthApi) -> None:
    unknown = api.http.get(auth_url(api, client_id="nobody.apps.googleusercontent.com"))
    assert unknown.status_code == 401
    assert "invalid_client" in unknown.text
    unregistered = api.http.get(auth_url(api, redirect_uri="https://evil.example/cb"))
    assert unregistered.status_code == 400
    assert "redirect_uri_mismatch" in unregistered.text
    no_scope = api.http.get(auth_url(api, scope=""))
    assert no_scope.status_code == 400
    token = api.http.get(auth_url(api, response_type="token"))
    assert redirect_query(token)["error"] == "unsupported_response_type"
    stale = api.http.post("/o/oauth2/v2/auth", data={"request_id": "gone", "action": "allow"})
    assert stale.status_code == 400


def test_page_escapes_what_it_shows(api: OAuthApi) -> None:
    page = api.http.get(auth_url(api, login_hint='"><script>alert(1)</script>'))
    assert "<script>alert(1)" not in page.text
