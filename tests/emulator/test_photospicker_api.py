"""The Photos Picker API of the emulator, driven by google-api-python-client built from the
emulator's discovery document, with tokens from the emulator's real code flow, and the user's
picking done through the control API (no browser)."""

from __future__ import annotations

import io
from functools import partial
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from PIL import Image

from grantkeeper.emulator import AsyncEmulatorControl
from grantkeeper.emulator.server import EmulatorHandle

from ..helpers_google import Grant, backend_sign_in

PICKER = "https://www.googleapis.com/auth/photospicker.mediaitems.readonly"
READ_APPCREATED = "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata"
DISCOVERY = "/discovery/v1/apis/{api}/{apiVersion}/rest"

sign_in = partial(backend_sign_in, project="picker-app")


def client(server: EmulatorHandle, token: str, api: str = "photospicker") -> Any:
    return build(
        api,
        "v1",
        credentials=Credentials(token=token),
        discoveryServiceUrl=server.base_url + DISCOVERY,
        static_discovery=False,
        cache_discovery=False,
    )


def fill_library(server: EmulatorHandle, sub: str, count: int) -> list[dict[str, Any]]:
    reply = httpx.post(
        f"{server.base_url}/emulator/users/{sub}/library", json={"count": count, "seed": 5}
    )
    assert reply.status_code == 201, reply.text
    items: list[dict[str, Any]] = reply.json()["mediaItems"]
    return items


def pick(server: EmulatorHandle, session_id: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/emulator/photospicker/sessions/{session_id}/pick", json=body
    )


def bearer(grant: Grant) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant.token}"}


def test_the_discovery_document_says_where_the_picker_lives(emulator: EmulatorHandle) -> None:
    document = httpx.get(emulator.base_url + "/discovery/v1/apis/photospicker/v1/rest").json()
    assert document["rootUrl"] == emulator.base_url + "/"
    assert document["servicePath"] == "photospicker/"
    assert document["baseUrl"] == emulator.base_url + "/photospicker/"
    assert set(document["resources"]["sessions"]["methods"]) == {"create", "get", "delete"}
    assert set(document["resources"]["mediaItems"]["methods"]) == {"list"}
    assert list(document["auth"]["oauth2"]["scopes"]) == [PICKER]
    fields = document["schemas"]["PickingSession"]["properties"]
    assert set(fields) == {
        "id",
        "pickerUri",
        "pollingConfig",
        "expireTime",
        "pickingConfig",
        "mediaItemsSet",
    }


def test_the_whole_picker_flow(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    library = fill_library(emulator, grant.sub, 5)
    assert all(item["createdByApp"] is None for item in library)
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={"pickingConfig": {"maxItemCount": "3"}}).execute()
        assert session["mediaItemsSet"] is False
        assert session["pickerUri"] == f"{emulator.base_url}/picker/{session['id']}"
        assert session["pickingConfig"] == {"maxItemCount": "3"}
        assert session["pollingConfig"] == {"pollInterval": "5s", "timeoutIn": "3600s"}
        assert session["expireTime"].endswith("Z")

        # Before Done: FAILED_PRECONDITION, as Google's reference says.
        with pytest.raises(HttpError) as early:
            picker.mediaItems().list(sessionId=session["id"]).execute()
        assert early.value.status_code == 400
        assert b'"FAILED_PRECONDITION"' in early.value.content

        # More than maxItemCount is refused; then the user picks two photos and taps Done.
        too_many = pick(emulator, session["id"], count=4)
        assert too_many.status_code == 400
        assert too_many.json()["error"] == "too_many_items"
        chosen = [library[3]["id"], library[1]["id"]]
        picked = pick(emulator, session["id"], media_item_ids=chosen)
        assert picked.status_code == 200, picked.text
        assert picked.json()["pickedMediaItemIds"] == chosen

        polled = picker.sessions().get(sessionId=session["id"]).execute()
        assert polled["mediaItemsSet"] is True
        assert "pollingConfig" not in polled  # set only while mediaItemsSet is false

        listed = picker.mediaItems().list(sessionId=session["id"], pageSize=1).execute()
        assert [i["id"] for i in listed["mediaItems"]] == chosen[:1]
        rest = picker.mediaItems().list(sessionId=session["id"], pageToken=listed["nextPageToken"])
        second = rest.execute()
        assert [i["id"] for i in second["mediaItems"]] == chosen[1:]
        assert "nextPageToken" not in second
        item = listed["mediaItems"][0]
        assert item["type"] == "PHOTO"
        assert item["createTime"].endswith("Z")
        media = item["mediaFile"]
        assert media["mimeType"] == "image/jpeg"
        assert media["filename"] == library[3]["filename"]
        assert media["mediaFileMetadata"]["width"] == 640

        # The bytes: the user's token is needed; =d is the original, =w-h scales down.
        base = media["baseUrl"]
        assert httpx.get(base + "=d").status_code == 401
        original = httpx.get(base + "=d", headers=bearer(grant))
        assert original.status_code == 200
        assert original.headers["content-type"] == "image/jpeg"
        small = httpx.get(base + "=w160-h120", headers=bearer(grant))
        with (
            Image.open(io.BytesIO(original.content)) as full,
            Image.open(io.BytesIO(small.content)) as thumb,
        ):
            assert full.size == (640, 480)
            assert thumb.size == (160, 120)

        # Done means done: the picker page and a second pick no longer work.
        assert pick(emulator, session["id"], count=1).status_code == 409
        assert httpx.get(session["pickerUri"]).status_code == 410

        assert picker.sessions().delete(sessionId=session["id"]).execute() == {}
        with pytest.raises(HttpError) as gone:
            picker.sessions().get(sessionId=session["id"]).execute()
        assert gone.value.status_code == 404


def test_base_urls_stop_working_60_minutes_after_listing(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    fill_library(emulator, grant.sub, 1)
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
        pick(emulator, session["id"], count=1).raise_for_status()
        listed = picker.mediaItems().list(sessionId=session["id"]).execute()
    base = listed["mediaItems"][0]["mediaFile"]["baseUrl"]
    emulator.control.advance_clock(59 * 60)
    # A fresh token for the same user: the access token itself lives only an hour too.
    fresh = sign_in(emulator, [PICKER], email=grant.email)
    assert httpx.get(base + "=d", headers=bearer(fresh)).status_code == 200
    emulator.control.advance_clock(61)
    expired = httpx.get(base + "=d", headers=bearer(fresh))
    assert expired.status_code == 403
    assert "expired" in expired.json()["error"]["message"]


def test_another_users_token_cannot_open_a_base_url(emulator: EmulatorHandle) -> None:
    alice = sign_in(emulator, [PICKER])
    mallory = sign_in(emulator, [PICKER])
    fill_library(emulator, alice.sub, 1)
    with client(emulator, alice.token) as picker:
        session = picker.sessions().create(body={}).execute()
        pick(emulator, session["id"], count=1).raise_for_status()
        base = picker.mediaItems().list(sessionId=session["id"]).execute()["mediaItems"][0]
    url = base["mediaFile"]["baseUrl"] + "=d"
    assert httpx.get(url, headers=bearer(mallory)).status_code == 403
    # Nor can Mallory see Alice's session: it looks like no session at all.
    with client(emulator, mallory.token) as picker, pytest.raises(HttpError) as hidden:
        picker.sessions().get(sessionId=session["id"]).execute()
    assert hidden.value.status_code == 404


def test_without_the_picker_scope_every_call_is_refused(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, ["openid", "email", READ_APPCREATED])
    with client(emulator, grant.token) as picker, pytest.raises(HttpError) as refused:
        picker.sessions().create(body={}).execute()
    assert refused.value.status_code == 403
    assert b"ACCESS_TOKEN_SCOPE_INSUFFICIENT" in refused.value.content
    assert PICKER in refused.value.resp["www-authenticate"]
    no_token = httpx.post(emulator.base_url + "/photospicker/v1/sessions", json={})
    assert no_token.status_code == 401


def test_photos_the_user_picked_stay_hidden_from_the_library_api(
    emulator: EmulatorHandle,
) -> None:
    grant = sign_in(emulator, [PICKER, READ_APPCREATED])
    fill_library(emulator, grant.sub, 3)
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
        pick(emulator, session["id"], count=3).raise_for_status()
        picked = picker.mediaItems().list(sessionId=session["id"]).execute()["mediaItems"]
    with client(emulator, grant.token, "photoslibrary") as library:
        assert library.mediaItems().list().execute().get("mediaItems", []) == []
        with pytest.raises(HttpError) as hidden:
            library.mediaItems().get(mediaItemId=picked[0]["id"]).execute()
        assert hidden.value.status_code == 404


def test_too_many_open_sessions_is_resource_exhausted(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    httpx.post(
        emulator.base_url + "/emulator/photospicker/settings", json={"max_open_sessions": 2}
    ).raise_for_status()
    with client(emulator, grant.token) as picker:
        first = picker.sessions().create(body={}).execute()
        picker.sessions().create(body={}).execute()
        with pytest.raises(HttpError) as exhausted:
            picker.sessions().create(body={}).execute()
        assert exhausted.value.status_code == 429
        assert b'"RESOURCE_EXHAUSTED"' in exhausted.value.content
        # Deleting a session, as Google recommends, makes room again.
        picker.sessions().delete(sessionId=first["id"]).execute()
        picker.sessions().create(body={}).execute()


def test_a_repeated_request_id_returns_the_same_session(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    with client(emulator, grant.token) as picker:
        one = picker.sessions().create(body={}, requestId="7f1c").execute()
        two = picker.sessions().create(body={}, requestId="7f1c").execute()
    assert one["id"] == two["id"]


def test_sessions_expire_on_the_emulator_clock(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
    emulator.control.advance_clock(1800)
    fresh = sign_in(emulator, [PICKER], email=grant.email)
    with client(emulator, fresh.token) as picker:
        half = picker.sessions().get(sessionId=session["id"]).execute()
        assert half["pollingConfig"]["timeoutIn"] == "1800s"
        emulator.control.advance_clock(1800)
        with pytest.raises(HttpError) as expired:
            picker.sessions().get(sessionId=session["id"]).execute()
    assert expired.value.status_code == 404
    assert httpx.get(session["pickerUri"]).status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "sessionId is required."),
        ({"sessionId": "x", "pageSize": "-1"}, "The page size must not be negative."),
    ],
)
def test_bad_list_arguments_are_invalid(
    emulator: EmulatorHandle, query: dict[str, str], message: str
) -> None:
    grant = sign_in(emulator, [PICKER])
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
    if "sessionId" in query:
        query = query | {"sessionId": session["id"]}
        fill_library(emulator, grant.sub, 1)
        pick(emulator, session["id"], count=1).raise_for_status()
    reply = httpx.get(
        emulator.base_url + "/photospicker/v1/mediaItems", params=query, headers=bearer(grant)
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == message


def test_a_bad_max_item_count_is_invalid(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    reply = httpx.post(
        emulator.base_url + "/photospicker/v1/sessions",
        json={"pickingConfig": {"maxItemCount": "2001"}},
        headers=bearer(grant),
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_control_calls_refuse_what_a_user_could_not_do(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    fill_library(emulator, grant.sub, 2)
    unknown_user = httpx.post(emulator.base_url + "/emulator/users/1/library", json={"count": 1})
    assert unknown_user.status_code == 404
    assert pick(emulator, "no-such-session", count=1).status_code == 404
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
    both = pick(emulator, session["id"], count=1, media_item_ids=["a"])
    assert both.status_code == 400
    assert pick(emulator, session["id"], count=3).json()["error"] == "not_enough_photos"
    foreign = pick(emulator, session["id"], media_item_ids=["AL-not-hers"])
    assert foreign.json()["error"] == "unknown_items"


def test_reset_forgets_sessions_libraries_and_settings(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    fill_library(emulator, grant.sub, 1)
    base = emulator.base_url + "/emulator/photospicker"
    httpx.post(base + "/settings", json={"session_ttl": 20}).raise_for_status()
    with client(emulator, grant.token) as picker:
        picker.sessions().create(body={}).execute()
    emulator.control.reset()
    assert httpx.get(base + "/settings").json()["session_ttl"] == 3600
    assert httpx.get(base + "/sessions").json() == []
    emulator.control.create_user(grant.email, sub=grant.sub)  # the same account, again
    library = httpx.get(f"{emulator.base_url}/emulator/users/{grant.sub}/library")
    assert library.json() == {"mediaItems": []}


@pytest.mark.anyio
async def test_the_control_clients_fill_and_pick(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
    async with AsyncEmulatorControl(emulator.base_url) as control:
        items = await control.fill_library(grant.sub, 2, seed=9)
        picked = await control.pick(session["id"], media_item_ids=[items[1]["id"]])
    assert picked["mediaItemsSet"] is True
    assert picked["pickedMediaItemIds"] == [items[1]["id"]]
    again = emulator.control.fill_library(grant.sub, 1)
    assert again[0]["createdByApp"] is None


def test_a_base_url_opens_only_for_the_app_the_user_picked_for(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    other_app = backend_sign_in(emulator, [PICKER], project="another-app", email=grant.email)
    fill_library(emulator, grant.sub, 1)
    with client(emulator, grant.token) as picker:
        session = picker.sessions().create(body={}).execute()
        emulator.control.pick(session["id"], count=1)
        item = picker.mediaItems().list(sessionId=session["id"]).execute()["mediaItems"][0]
    url = item["mediaFile"]["baseUrl"] + "=d"
    assert httpx.get(url, headers=bearer(other_app)).status_code == 403
    assert httpx.get(url, headers=bearer(grant)).status_code == 200
    # The user removes the app in their Google Account: its tokens die, and with them access
    # to the base URLs (Google's guide: they "may expire earlier" when the user revokes).
    emulator.control.revoke_user(grant.sub, grant.client_id)
    assert httpx.get(url, headers=bearer(grant)).status_code == 401


def test_faults_armed_for_the_picker_answer_in_googles_envelope(emulator: EmulatorHandle) -> None:
    grant = sign_in(emulator, [PICKER])
    emulator.control.add_fault("photospicker.sessions.create", status=503)
    with client(emulator, grant.token) as picker:
        with pytest.raises(HttpError) as failed:
            picker.sessions().create(body={}).execute()
        assert failed.value.status_code == 503
        assert b'"UNAVAILABLE"' in failed.value.content
        picker.sessions().create(body={}).execute()  # one call only: the next one works
    assert emulator.control.stats()["photospicker.sessions.create"] == 2
