"""The page behind ``pickerUri``, driven over plain HTTP (the browser test drives it in Chromium),
and the consent page granting the Picker scope incrementally."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from grantkeeper.emulator.server import EmulatorHandle

from .oauth_api import REDIRECT, OAuthApi
from .test_photospicker_api import PICKER, bearer, fill_library, sign_in


def new_session(emulator: EmulatorHandle, token: str, max_items: int = 2000) -> dict[str, str]:
    reply = httpx.post(
        emulator.base_url + "/photospicker/v1/sessions",
        json={"pickingConfig": {"maxItemCount": str(max_items)}},
        headers={"Authorization": f"Bearer {token}"},
    )
    reply.raise_for_status()
    session: dict[str, str] = reply.json()
    return session


def test_the_user_picks_on_the_page_and_taps_done(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    library = fill_library(emulator, grant.sub, 3)
    session = new_session(emulator, grant.token)
    page = httpx.get(session["pickerUri"])
    assert page.status_code == 200
    for item in library:
        assert item["filename"] in page.text
    thumbnails = re.findall(r'<img src="([^"]+)"', page.text)
    assert len(thumbnails) == 3
    thumb = httpx.get(emulator.base_url + thumbnails[0])
    assert thumb.status_code == 200
    assert thumb.content[:2] == b"\xff\xd8"

    form = urlencode([("autoclose", ""), ("item", library[0]["id"]), ("item", library[2]["id"])])
    done = httpx.post(
        session["pickerUri"],
        content=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert "You shared 2 photo(s)" in done.text
    assert "window.close" not in done.text  # no /autoclose: the Done screen stays

    listed = httpx.get(
        emulator.base_url + "/photospicker/v1/mediaItems",
        params={"sessionId": session["id"]},
        headers=bearer(grant),
    ).json()
    assert [i["id"] for i in listed["mediaItems"]] == [library[0]["id"], library[2]["id"]]
    assert httpx.get(session["pickerUri"]).status_code == 410  # Done: the URI stops working
    assert httpx.get(emulator.base_url + thumbnails[0]).status_code == 404


def test_autoclose_closes_the_window_after_done(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    library = fill_library(emulator, grant.sub, 1)
    session = new_session(emulator, grant.token)
    page = httpx.get(session["pickerUri"] + "/autoclose")
    assert page.status_code == 200
    assert 'name="autoclose" value="1"' in page.text
    done = httpx.post(
        session["pickerUri"],
        data={"autoclose": "1", "item": library[0]["id"]},
    )
    assert done.status_code == 200
    assert "window.close()" in done.text


def test_the_page_refuses_more_than_max_item_count_and_nothing(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    library = fill_library(emulator, grant.sub, 3)
    session = new_session(emulator, grant.token, max_items=1)
    form = urlencode([("item", library[0]["id"]), ("item", library[1]["id"])])
    headers = {"content-type": "application/x-www-form-urlencoded"}
    too_many = httpx.post(session["pickerUri"], content=form, headers=headers)
    assert too_many.status_code == 400
    assert "at most 1 items" in too_many.text
    nothing = httpx.post(session["pickerUri"], content="", headers=headers)
    assert nothing.status_code == 400
    assert "Pick at least one photo" in nothing.text
    assert httpx.get(session["pickerUri"]).status_code == 200  # still open: nothing was lost


def test_an_unknown_session_page_says_what_to_do(emulator: EmulatorHandle) -> None:
    page = httpx.get(emulator.base_url + "/picker/not-a-session")
    assert page.status_code == 404
    assert "start again" in page.text


def test_the_consent_page_grants_the_picker_scope_incrementally(api: OAuthApi) -> None:
    query = {
        "client_id": api.web["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": PICKER,
        "include_granted_scopes": "true",
        "access_type": "offline",
        "state": "s1",
    }
    page = api.http.get(f"/o/oauth2/v2/auth?{urlencode(query)}")
    assert page.status_code == 200
    assert PICKER in page.text
    location = api.emulator.control.authorize(
        f"/o/oauth2/v2/auth?{urlencode(query)}", "pia@example.com"
    )
    code = parse_qs(urlsplit(location).query)["code"][0]
    answer = api.exchange(code, redirect_uri=REDIRECT)
    assert answer.status_code == 200, answer.text
    assert PICKER in answer.json()["scope"].split()
