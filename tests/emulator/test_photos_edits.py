"""Photos Library methods beyond the guide's story, driven through googleapiclient built from the
emulator's discovery document: batchGet, patch, batchAdd/RemoveMediaItems, addEnrichment."""

from __future__ import annotations

import json
import re
from importlib import resources

import httpx
import pytest
from googleapiclient.errors import HttpError

from grantkeeper.emulator import create_app
from grantkeeper.emulator.server import EmulatorHandle

from .test_photos_api import ALL_2025, APPEND, READ, photos_client, seed, sign_in


@pytest.fixture
def server(emulator: EmulatorHandle) -> EmulatorHandle:
    return emulator


def test_discovery_document_covers_every_method_served() -> None:
    served = set()
    for path, operations in create_app().openapi()["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/") and "Photos Library v1" in operation.get("tags", []):
                served.add((method.upper(), re.sub(r"\{[^}]+\}", "{}", path)))
    source = resources.files("grantkeeper.emulator.photos").joinpath("photoslibrary.v1.json")
    document = json.loads(source.read_text(encoding="utf-8"))
    listed = set()
    for resource in document["resources"].values():
        for method in resource["methods"].values():
            path = "/" + re.sub(r"\{[^}]+\}", "{}", method["flatPath"])
            listed.add((method["httpMethod"], path))
    # Uploads are not a discovery method at Google either: bytes go to /v1/uploads directly.
    assert served - {("POST", "/v1/uploads")} == listed
    names = {f"{r}.{m}" for r, res in document["resources"].items() for m in res["methods"]}
    for name in (
        "mediaItems.batchGet",
        "mediaItems.patch",
        "albums.patch",
        "albums.batchAddMediaItems",
        "albums.batchRemoveMediaItems",
        "albums.addEnrichment",
    ):
        assert name in names


def test_batch_get_patch_add_remove_and_enrich(server: EmulatorHandle) -> None:
    grant = sign_in(server, ALL_2025)
    seeded = seed(server, grant, count=3)
    ids = [item["id"] for item in seeded["mediaItems"]]
    with photos_client(server, grant) as service:
        got = service.mediaItems().batchGet(mediaItemIds=[ids[1], "ALnope", ids[0]]).execute()
        results = got["mediaItemResults"]
        assert results[0]["mediaItem"]["id"] == ids[1]
        assert results[1] == {"status": {"code": 5, "message": "Requested entity was not found."}}
        assert results[2]["mediaItem"]["id"] == ids[0]

        patched = (
            service.mediaItems()
            .patch(id=ids[0], updateMask="description", body={"description": "Sunset"})
            .execute()
        )
        assert patched["description"] == "Sunset"
        assert service.mediaItems().get(mediaItemId=ids[0]).execute()["description"] == "Sunset"

        album = service.albums().create(body={"album": {"title": "Best"}}).execute()
        service.albums().batchAddMediaItems(
            albumId=album["id"], body={"mediaItemIds": ids[:2]}
        ).execute()
        renamed = (
            service.albums()
            .patch(
                id=album["id"],
                updateMask="title,coverPhotoMediaItemId",
                body={"title": "Best of", "coverPhotoMediaItemId": ids[1]},
            )
            .execute()
        )
        assert renamed["title"] == "Best of"
        assert renamed["mediaItemsCount"] == "2"
        assert renamed["coverPhotoMediaItemId"] == ids[1]
        service.albums().batchRemoveMediaItems(
            albumId=album["id"], body={"mediaItemIds": [ids[1]]}
        ).execute()
        after = service.albums().get(albumId=album["id"]).execute()
        assert after["mediaItemsCount"] == "1"
        assert after["coverPhotoMediaItemId"] == ids[0]

        enrichment = (
            service.albums()
            .addEnrichment(
                albumId=album["id"],
                body={
                    "newEnrichmentItem": {"textEnrichment": {"text": "Holiday"}},
                    "albumPosition": {"position": "FIRST_IN_ALBUM"},
                },
            )
            .execute()
        )
        assert enrichment["enrichmentItem"]["id"]

        with pytest.raises(HttpError) as caught:
            service.albums().patch(id=album["id"], updateMask="shareInfo", body={}).execute()
        assert caught.value.status_code == 400
        with pytest.raises(HttpError) as caught:
            service.albums().addEnrichment(
                albumId=album["id"], body={"newEnrichmentItem": {}, "albumPosition": {}}
            ).execute()
        assert caught.value.status_code == 400


def test_edit_scopes_are_required(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPEND, READ})
    ids = [item["id"] for item in seed(server, grant, count=1)["mediaItems"]]
    reply = httpx.patch(
        f"{server.base_url}/v1/mediaItems/{ids[0]}",
        params={"updateMask": "description"},
        json={"description": "x"},
        headers={"Authorization": f"Bearer {grant.token}"},
    )
    assert reply.status_code == 403
    assert reply.json()["error"]["status"] == "PERMISSION_DENIED"


def test_another_apps_items_are_invisible_to_batch_get(server: EmulatorHandle) -> None:
    mine = sign_in(server, ALL_2025, email="same@example.com")
    ids = [item["id"] for item in seed(server, mine, count=1)["mediaItems"]]
    other = sign_in(server, ALL_2025, project="another-app", email="same@example.com")
    assert other.sub == mine.sub
    with photos_client(server, other) as service:
        results = service.mediaItems().batchGet(mediaItemIds=ids).execute()["mediaItemResults"]
    assert results == [{"status": {"code": 5, "message": "Requested entity was not found."}}]
