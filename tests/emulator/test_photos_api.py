"""Photos Library v1 of the emulator under Google's 2025 rules, driven by real clients.

google-api-python-client builds its Photos client from the emulator's discovery document; bytes
go to ``POST /v1/uploads`` through google-auth's ``AuthorizedSession``, as Google's samples do.
Tokens come from the emulator's real flow (server auth code redeemed at ``POST /token``).
"""

from __future__ import annotations

import io
from functools import partial
from typing import Any

import httpx
import pytest
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from PIL import Image, ImageChops, ImageOps, ImageStat

from grantkeeper.emulator.photos.pictures import generate_photo
from grantkeeper.emulator.server import EmulatorHandle

from ..helpers_google import Grant, backend_sign_in

PHOTOS = "https://www.googleapis.com/auth/photoslibrary"
APPEND = PHOTOS + ".appendonly"
READ = PHOTOS + ".readonly.appcreateddata"
EDIT = PHOTOS + ".edit.appcreateddata"
ALL_2025 = {APPEND, READ, EDIT}
DISCOVERY = "/discovery/v1/apis/{api}/{apiVersion}/rest"


@pytest.fixture
def server(emulator: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, fresh for this test (its Drive and Photos data too)."""
    return emulator


#: Signs a user in (see helpers_google); each module's apps share one project by default.
sign_in = partial(backend_sign_in, project="photo-app")


def photos_client(server: EmulatorHandle, grant: Grant) -> Any:
    return build(
        "photoslibrary",
        "v1",
        credentials=Credentials(token=grant.token),
        discoveryServiceUrl=server.base_url + DISCOVERY,
        static_discovery=False,
        cache_discovery=False,
    )


def seed(
    server: EmulatorHandle, grant: Grant, count: int = 3, title: str = "Inbox"
) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.base_url}/emulator/users/{grant.sub}/photos",
        json={"client_id": grant.client_id, "album_title": title, "count": count},
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def upload(server: EmulatorHandle, grant: Grant, content: bytes, name: str) -> str:
    """Step 1 of Google's upload guide: raw bytes in, an upload token (plain text) out."""
    with AuthorizedSession(Credentials(token=grant.token)) as session:
        reply = session.post(
            server.base_url + "/v1/uploads",
            data=content,
            headers={
                "Content-Type": "application/octet-stream",
                "X-Goog-Upload-Content-Type": "image/jpeg",
                "X-Goog-Upload-File-Name": name,
                "X-Goog-Upload-Protocol": "raw",
            },
        )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def download(url: str) -> Image.Image:
    reply = httpx.get(url)
    assert reply.status_code == 200
    return Image.open(io.BytesIO(reply.content))


def test_the_offline_enhance_job(server: EmulatorHandle) -> None:
    """Google's guide's story: read the pictures of "Inbox", enhance them, save to "Enhanced"."""
    grant = sign_in(server, ALL_2025)
    seed(server, grant, count=3)
    with photos_client(server, grant) as service:
        albums = service.albums().list().execute()["albums"]
        inbox = next(a for a in albums if a["title"] == "Inbox")
        assert inbox["mediaItemsCount"] == "3"
        assert inbox["isWriteable"] is True
        items = service.mediaItems().search(body={"albumId": inbox["id"]}).execute()["mediaItems"]
        assert len(items) == 3
        enhanced = service.albums().create(body={"album": {"title": "Enhanced"}}).execute()
        assert "mediaItemsCount" not in enhanced
        tokens = []
        for item in items:
            assert service.mediaItems().get(mediaItemId=item["id"]).execute() == item
            original = download(item["baseUrl"] + "=d")
            assert original.format == "JPEG"
            assert item["mimeType"] == "image/jpeg"
            assert item["mediaMetadata"]["width"] == str(original.width)
            assert item["mediaMetadata"]["height"] == str(original.height)
            better = ImageOps.autocontrast(original.convert("RGB"), cutoff=1)
            # The seeded pictures are flat on purpose: enhancing them must show.
            difference = ImageStat.Stat(ImageChops.difference(original.convert("RGB"), better))
            assert sum(difference.mean) / 3 > 8
            out = io.BytesIO()
            better.save(out, "JPEG")
            tokens.append(upload(server, grant, out.getvalue(), "better-" + item["filename"]))
        created = (
            service.mediaItems()
            .batchCreate(
                body={
                    "albumId": enhanced["id"],
                    "newMediaItems": [{"simpleMediaItem": {"uploadToken": t}} for t in tokens],
                }
            )
            .execute()
        )
        results = created["newMediaItemResults"]
        assert [r["status"] for r in results] == [{"message": "Success"}] * 3
        assert [r["uploadToken"] for r in results] == tokens
        assert results[0]["mediaItem"]["filename"].startswith("better-")
        in_album = service.mediaItems().search(body={"albumId": enhanced["id"]}).execute()
        assert [i["id"] for i in in_album["mediaItems"]] == [r["mediaItem"]["id"] for r in results]
        assert service.albums().get(albumId=enhanced["id"]).execute()["mediaItemsCount"] == "3"


def test_batch_create_partial_failure(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 100, 50)).save(picture, "PNG")
    good = upload(server, grant, picture.getvalue(), "ok.png")
    not_image = upload(server, grant, b"this is not a picture", "notes.txt")
    with photos_client(server, grant) as service:
        body = {
            "newMediaItems": [
                {"description": "fine", "simpleMediaItem": {"uploadToken": good}},
                {"simpleMediaItem": {"uploadToken": "CAISnot-a-token"}},
                {"simpleMediaItem": {"uploadToken": not_image}},
                {"simpleMediaItem": {"uploadToken": good}},  # a token works once
            ]
        }
        results = service.mediaItems().batchCreate(body=body).execute()["newMediaItemResults"]
    assert results[0]["status"] == {"message": "Success"}
    item = results[0]["mediaItem"]
    assert item["mimeType"] == "image/png"
    assert item["description"] == "fine"
    assert (item["mediaMetadata"]["width"], item["mediaMetadata"]["height"]) == ("40", "30")
    failed = "Failed: There was an error while trying to create this media item."
    assert results[1] == {
        "uploadToken": "CAISnot-a-token",
        "status": {"code": 3, "message": failed},
    }
    assert results[2]["status"] == {
        "code": 3,
        "message": "NOT_IMAGE: There was an error while trying to create this media item.",
    }
    assert "mediaItem" not in results[2]
    assert results[3]["status"]["code"] == 3


def test_more_than_50_new_items_is_an_error(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    entries = [{"simpleMediaItem": {"uploadToken": f"CAIS{n}"}} for n in range(51)]
    reply = httpx.post(
        server.base_url + "/v1/mediaItems:batchCreate",
        json={"newMediaItems": entries},
        headers={"Authorization": f"Bearer {grant.token}"},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {
            "code": 400,
            "message": "Request must contain at most 50 new media items (it has 51).",
            "status": "INVALID_ARGUMENT",
        }
    }


def test_album_and_filters_together_is_an_error(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    album_id = seed(server, grant, count=1)["album"]["id"]
    with photos_client(server, grant) as service:
        with pytest.raises(HttpError) as caught:
            service.mediaItems().search(
                body={
                    "albumId": album_id,
                    "filters": {"mediaTypeFilter": {"mediaTypes": ["PHOTO"]}},
                }
            ).execute()
        assert caught.value.status_code == 400
        photos_only = {"filters": {"mediaTypeFilter": {"mediaTypes": ["PHOTO"]}}}
        assert len(service.mediaItems().search(body=photos_only).execute()["mediaItems"]) == 1
        videos = {"filters": {"mediaTypeFilter": {"mediaTypes": ["VIDEO"]}}}
        assert service.mediaItems().search(body=videos).execute() == {}


@pytest.mark.parametrize("removed", [PHOTOS, PHOTOS + ".readonly", PHOTOS + ".sharing"])
def test_scopes_removed_in_2025_are_refused_at_authorization(
    server: EmulatorHandle, removed: str
) -> None:
    web = server.control.create_client("web")["web"]
    answer = server.control.http.post(
        "/emulator/server-auth-code",
        json={
            "client_id": web["client_id"],
            "email": "a@example.com",
            "scopes": ["openid", removed],
        },
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_scope",
        "error_description": "Some requested scopes were invalid. "
        f"{{valid=[openid], invalid=[{removed}]}}",
    }


def test_insufficient_scope_has_no_errors_or_details(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPEND})
    reply = httpx.get(
        server.base_url + "/v1/albums", headers={"Authorization": f"Bearer {grant.token}"}
    )
    assert reply.status_code == 403
    assert reply.headers["www-authenticate"] == (
        f'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{READ}"'
    )
    assert reply.json() == {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED",
        }
    }


def test_upload_without_appendonly_is_googles_401(server: EmulatorHandle) -> None:
    grant = sign_in(server, {READ})
    for headers in ({"Authorization": f"Bearer {grant.token}"}, {}):
        reply = httpx.post(
            server.base_url + "/v1/uploads",
            content=b"\xff\xd8 bytes",
            headers={"X-Goog-Upload-Protocol": "raw", **headers},
        )
        assert reply.status_code == 401
        assert reply.headers["content-type"] == "text/html; charset=UTF-8"
        assert reply.content == (
            b'{\n  "code": 16,\n  "message": "Authentication session is not defined."\n}'
        )
        assert len(reply.content) == 71


def test_appendonly_can_add_but_not_read(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPEND})
    with photos_client(server, grant) as service:
        album = service.albums().create(body={"album": {"title": "Drop box"}}).execute()
        with pytest.raises(HttpError) as caught:
            service.albums().get(albumId=album["id"]).execute()
    assert caught.value.status_code == 403


def test_another_apps_album_is_invisible(server: EmulatorHandle) -> None:
    owner = sign_in(server, ALL_2025, project="photo-app")
    seeded = seed(server, owner, count=2, title="Private")
    album_id, item_id = seeded["album"]["id"], seeded["mediaItems"][0]["id"]
    other = sign_in(server, ALL_2025, project="other-app", email=owner.email)
    with photos_client(server, other) as service:
        assert service.albums().list().execute() == {}
        assert service.mediaItems().list().execute() == {}
        for call in (
            service.albums().get(albumId=album_id),
            service.mediaItems().get(mediaItemId=item_id),
            service.mediaItems().search(body={"albumId": album_id}),
        ):
            with pytest.raises(HttpError) as caught:
                call.execute()
            assert caught.value.status_code == 404
    token = upload(server, other, seeded_jpeg(), "x.jpg")
    reply = httpx.post(
        server.base_url + "/v1/mediaItems:batchCreate",
        json={"albumId": album_id, "newMediaItems": [{"simpleMediaItem": {"uploadToken": token}}]},
        headers={"Authorization": f"Bearer {other.token}"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "No permission to add media items to this album."
    # The owner's other client (same Cloud project) sees everything.
    sibling = sign_in(server, {READ}, project="photo-app", email=owner.email)
    with photos_client(server, sibling) as service:
        assert service.albums().get(albumId=album_id).execute()["mediaItemsCount"] == "2"


def seeded_jpeg() -> bytes:
    return generate_photo(7, 64, 48)


def test_album_paging_defaults_and_maximum(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    auth = {"Authorization": f"Bearer {grant.token}"}
    with httpx.Client(base_url=server.base_url, headers=auth) as http:
        for n in range(53):
            made = http.post("/v1/albums", json={"album": {"title": f"Album {n:02d}"}})
            assert made.status_code == 200
    with photos_client(server, grant) as service:
        first = service.albums().list().execute()
        assert len(first["albums"]) == 20
        titles = [a["title"] for a in first["albums"]]
        token = first["nextPageToken"]
        while token:
            page = service.albums().list(pageSize=100, pageToken=token).execute()
            assert len(page["albums"]) <= 50
            titles += [a["title"] for a in page["albums"]]
            token = page.get("nextPageToken")
    assert titles == [f"Album {n:02d}" for n in range(53)]


def test_base_url_sizes_and_fields(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    item = seed(server, grant, count=1)["mediaItems"][0]
    original = download(item["baseUrl"] + "=d")
    assert original.size == (640, 480)
    small = download(item["baseUrl"] + "=w160-h160")
    assert small.size == (160, 120)
    assert httpx.get(item["baseUrl"][:-4] + "nope=d").status_code == 404
    reply = httpx.get(
        f"{server.base_url}/v1/mediaItems/{item['id']}",
        params={"fields": "id,mediaMetadata(width,height)"},
        headers={"Authorization": f"Bearer {grant.token}"},
    )
    assert reply.json() == {"id": item["id"], "mediaMetadata": {"width": "640", "height": "480"}}


def test_missing_token_and_unknown_item(server: EmulatorHandle) -> None:
    reply = httpx.get(server.base_url + "/v1/albums")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="https://accounts.google.com/"'
    assert reply.json()["error"] == {
        "code": 401,
        "message": "Request is missing required authentication credential. Expected OAuth 2 "
        "access token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "status": "UNAUTHENTICATED",
    }
    grant = sign_in(server, {READ})
    reply = httpx.get(
        server.base_url + "/v1/mediaItems/ALnope",
        headers={"Authorization": f"Bearer {grant.token}"},
    )
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
        }
    }


def test_seeding_needs_a_known_user_and_client(server: EmulatorHandle) -> None:
    grant = sign_in(server, {READ})
    url = f"{server.base_url}/emulator/users/{grant.sub}/photos"
    unknown_client = httpx.post(url, json={"client_id": "nobody"})
    assert unknown_client.status_code == 404
    assert unknown_client.json()["error"] == "unknown_client"
    assert (
        httpx.post(
            url.replace(grant.sub, "1" * 21), json={"client_id": grant.client_id}
        ).status_code
        == 404
    )


def test_served_photos_document_points_at_the_emulator(server: EmulatorHandle) -> None:
    document = httpx.get(server.base_url + "/discovery/v1/apis/photoslibrary/v1/rest").json()
    assert document["rootUrl"] == server.base_url + "/"
    assert set(document["auth"]["oauth2"]["scopes"]) == ALL_2025
    methods = {
        f"{resource}.{name}"
        for resource, body in document["resources"].items()
        for name in body["methods"]
    }
    assert methods == {
        "albums.list",
        "albums.create",
        "albums.get",
        "mediaItems.search",
        "mediaItems.list",
        "mediaItems.get",
        "mediaItems.batchCreate",
        "mediaItems.batchGet",
        "mediaItems.patch",
        "albums.patch",
        "albums.batchAddMediaItems",
        "albums.batchRemoveMediaItems",
        "albums.addEnrichment",
    }
