"""Google's grant life-cycle rules, on the emulator's own clock (google-protocol.md §3.3-3.5)."""

from __future__ import annotations

import threading

import httpx

from .oauth_api import SCOPES, OAuthApi

DAY = 24 * 3600
DEAD = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"


def works(api: OAuthApi, refresh_token: str) -> bool:
    response = api.refresh(refresh_token)
    if response.status_code == 200:
        return True
    assert (response.status_code, response.json()) == (400, DEAD)
    return False


def test_access_token_expires_by_the_emulator_clock(api: OAuthApi) -> None:
    access = api.sign_in()["access_token"]
    info = api.http.get("/tokeninfo", params={"access_token": access})
    assert info.status_code == 200
    assert 3590 <= int(info.json()["expires_in"]) <= 3599
    api.emulator.control.advance_clock(3599)
    assert api.emulator.state.lookup_access_token(access) is None
    expired = api.http.get("/tokeninfo", params={"access_token": access})
    assert (expired.status_code, expired.json()) == (
        400,
        {"error": "invalid_token", "error_description": "Invalid Value"},
    )
    assert (
        api.http.get("/v1/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code
        == 401
    )


def test_access_token_ttl_is_a_setting(api: OAuthApi) -> None:
    api.emulator.control.update_settings(access_token_ttl=120)
    body = api.sign_in()
    assert body["expires_in"] == 120
    api.emulator.control.advance_clock(121)
    assert api.emulator.state.lookup_access_token(body["access_token"]) is None


def test_refresh_token_only_on_consent(api: OAuthApi) -> None:
    first = api.sign_in()
    assert "refresh_token" in first
    again = api.sign_in()
    assert "refresh_token" not in again  # same user, client and scopes: no consent screen
    assert "refresh_token" in api.sign_in(prompt="consent")
    # A new scope means a new consent screen, and include_granted_scopes keeps the old ones.
    more = api.sign_in(scopes=["https://www.googleapis.com/auth/drive.file"])
    assert "refresh_token" in more
    assert set(SCOPES[3:]) < set(more["scope"].split())
    narrow = api.sign_in(scopes=["email"], include_granted_scopes=False)
    assert set(narrow["scope"].split()) == {
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
    }


def test_online_access_never_gets_a_refresh_token(api: OAuthApi) -> None:
    assert "refresh_token" not in api.sign_in(offline=False)


def test_hundred_live_refresh_tokens_per_user_and_client(api: OAuthApi) -> None:
    tokens = [api.sign_in(prompt="consent")["refresh_token"] for _ in range(101)]
    sub = api.emulator.state.user_by_email("alice@example.com").sub  # type: ignore[union-attr]
    assert api.emulator.control.stats()["live_refresh_tokens_per_user"] == {sub: 100}
    assert not works(api, tokens[0])  # the oldest died silently
    assert works(api, tokens[1])
    assert works(api, tokens[100])
    # Another client's tokens for the same user are not counted against this one.
    other = api.emulator.control.create_client("web")["web"]
    code = api.emulator.control.server_auth_code(
        api.ios["client_id"], other["client_id"], "alice@example.com"
    )
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "",
        "client_id": other["client_id"],
        "client_secret": other["client_secret"],
    }
    assert "refresh_token" in api.http.post("/token", data=form).json()
    assert works(api, tokens[1])


def test_cap_is_a_setting(api: OAuthApi) -> None:
    api.emulator.control.update_settings(max_refresh_tokens=2)
    tokens = [api.sign_in(prompt="consent")["refresh_token"] for _ in range(3)]
    assert [works(api, t) for t in tokens] == [False, True, True]


def test_six_months_idle_expiry(api: OAuthApi) -> None:
    token = api.sign_in()["refresh_token"]
    api.emulator.control.advance_clock(179 * DAY)
    assert works(api, token)  # using it resets the idle timer
    api.emulator.control.advance_clock(179 * DAY)
    assert works(api, token)
    api.emulator.control.advance_clock(180 * DAY)
    assert not works(api, token)


def test_testing_mode_seven_days_for_non_basic_scopes(api: OAuthApi) -> None:
    api.emulator.control.update_settings(testing_mode=True)
    with_drive = api.sign_in()
    basic_only = api.sign_in("bob@example.com", scopes=["openid", "email", "profile"])
    # Google's OAuth codelab shows 604799 for a "Testing" project's grant.
    assert with_drive["refresh_token_expires_in"] == 604799
    assert "refresh_token_expires_in" not in basic_only  # basic scopes do not expire
    api.emulator.control.advance_clock(7 * DAY - 60)
    assert works(api, with_drive["refresh_token"])
    api.emulator.control.advance_clock(60)
    assert not works(api, with_drive["refresh_token"])
    assert works(api, basic_only["refresh_token"])


def test_time_limited_grant(api: OAuthApi) -> None:
    body = api.sign_in(time_limited_seconds=3600)
    assert body["refresh_token_expires_in"] == 3599
    api.emulator.control.advance_clock(3599)
    assert works(api, body["refresh_token"])
    api.emulator.control.advance_clock(1)
    assert not works(api, body["refresh_token"])


def test_password_change_revokes_only_gmail_grants(api: OAuthApi) -> None:
    gmail = api.sign_in(scopes=["openid", "email", GMAIL])
    sub = api.emulator.state.user_by_email("alice@example.com").sub  # type: ignore[union-attr]
    other = api.emulator.control.create_client("web")["web"]
    code = api.emulator.control.server_auth_code(
        api.ios["client_id"], other["client_id"], "alice@example.com"
    )
    plain = api.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "",
            "client_id": other["client_id"],
            "client_secret": other["client_secret"],
        },
    ).json()
    assert api.emulator.control.password_change(sub) == 1
    assert not works(api, gmail["refresh_token"])
    assert api.emulator.state.lookup_access_token(gmail["access_token"]) is None
    assert api.emulator.state.lookup_access_token(plain["access_token"]) is not None


def test_user_removes_the_app(api: OAuthApi) -> None:
    body = api.sign_in()
    sub = api.emulator.state.user_by_email("alice@example.com").sub  # type: ignore[union-attr]
    assert api.emulator.control.revoke_user(sub, api.web["client_id"]) == 1
    assert not works(api, body["refresh_token"])
    assert api.emulator.state.lookup_access_token(body["access_token"]) is None
    # The consent is gone too: the next sign-in shows the screen and returns a refresh token.
    assert "refresh_token" in api.sign_in()


def test_removing_the_mobile_app_also_ends_the_consent_kept_for_its_server(
    api: OAuthApi,
) -> None:
    # The iOS app's codes are redeemed by the web (server) client, so the consent is recorded
    # under the web client; removing the app by its iOS client id must still forget it.
    body = api.sign_in()
    assert "refresh_token" not in api.sign_in()  # consent remembered
    sub = api.emulator.state.user_by_email("alice@example.com").sub  # type: ignore[union-attr]
    assert api.emulator.control.revoke_user(sub, api.ios["client_id"]) == 1
    assert not works(api, body["refresh_token"])
    again = api.sign_in()
    assert "refresh_token" in again
    assert works(api, again["refresh_token"])


def test_refresh_token_predecessor_stays_out_of_repr(api: OAuthApi) -> None:
    api.emulator.control.update_settings(rotate_refresh_tokens=True)
    first = api.sign_in()["refresh_token"]
    second = api.refresh(first).json()["refresh_token"]
    record = api.emulator.state.refresh_tokens[second]
    assert record.predecessor == first
    assert first not in repr(record)


def test_refresh_token_rotation_setting(api: OAuthApi) -> None:
    api.emulator.control.update_settings(rotate_refresh_tokens=True)
    old = api.sign_in()["refresh_token"]
    first = api.refresh(old).json()["refresh_token"]
    assert first != old
    # Until a successor is used the old token still works: the client may have died before
    # storing the successor.
    retry = api.refresh(old).json()["refresh_token"]
    assert retry not in (old, first)
    # Using a successor retires the old token and the other successors minted from it.
    assert works(api, retry)
    assert not works(api, old)
    assert not works(api, first)


def test_stats(api: OAuthApi) -> None:
    token = api.sign_in()["refresh_token"]
    api.refresh(token)
    api.refresh(token)
    api.http.post("/token", data={"grant_type": "password"})
    stats = api.emulator.control.stats()
    sub = api.emulator.state.user_by_email("alice@example.com").sub  # type: ignore[union-attr]
    assert stats["token"] == {"authorization_code": 1, "refresh_token": 2, "other": 1}
    assert stats["refreshes_per_user"] == {sub: 2}
    assert stats["live_refresh_tokens_per_user"] == {sub: 1}


def test_concurrent_exchanges_of_one_code_succeed_once(api: OAuthApi) -> None:
    code = api.code()
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def exchange() -> None:
        with httpx.Client(base_url=api.emulator.base_url) as http:
            barrier.wait()
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "",
                "client_id": api.web["client_id"],
                "client_secret": api.web["client_secret"],
            }
            statuses.append(http.post("/token", data=form).status_code)

    threads = [threading.Thread(target=exchange) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [400] * 7
