"""The Photos Library methods that read several items at once or change what the app created:
``mediaItems.batchGet``, ``mediaItems.patch``, ``albums.patch``, ``albums.batchAddMediaItems``,
``albums.batchRemoveMediaItems`` and ``albums.addEnrichment``.

As everywhere since 31 March 2025, an app reaches only the albums and items it created; another
app's item and a missing one look the same. Editing needs ``photoslibrary.edit.appcreateddata``;
adding to an album and enrichments also take ``photoslibrary.appendonly`` (the scopes of each
method in Google's discovery document).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from grantkeeper.emulator.errors import GoogleApiError, rpc_error
from grantkeeper.emulator.google_api import Caller, GoogleApiRoute, authorize, base_url
from grantkeeper.emulator.photos.library import Album, PhotosStore, photos_store
from grantkeeper.emulator.photos.resources import album_resource, media_item_resource
from grantkeeper.emulator.photos.routes import (
    APPENDONLY,
    EDIT_APPCREATED,
    MAX_ALBUM_ITEMS,
    MAX_NEW_ITEMS,
    MAX_TITLE,
    READONLY_APPCREATED,
    json_answer,
    json_body,
    not_found,
    photos_method,
)
from grantkeeper.emulator.state import EmulatorState

BATCH_GET = photos_method("BatchGetMediaItems", "mediaItems.batchGet", READONLY_APPCREATED)
PATCH_ITEM = photos_method("UpdateMediaItem", "mediaItems.patch", EDIT_APPCREATED)
PATCH_ALBUM = photos_method("UpdateAlbum", "albums.patch", EDIT_APPCREATED)
ADD_ITEMS = photos_method(
    "BatchAddMediaItemsToAlbum", "albums.batchAddMediaItems", APPENDONLY, EDIT_APPCREATED
)
REMOVE_ITEMS = photos_method(
    "BatchRemoveMediaItemsFromAlbum", "albums.batchRemoveMediaItems", EDIT_APPCREATED
)
ADD_ENRICHMENT = photos_method(
    "AddEnrichmentToAlbum", "albums.addEnrichment", APPENDONLY, EDIT_APPCREATED
)
MAX_DESCRIPTION = 1000
ENRICHMENT_KINDS = ("textEnrichment", "locationEnrichment", "mapEnrichment")
POSITIONS = ("FIRST_IN_ALBUM", "LAST_IN_ALBUM", "AFTER_MEDIA_ITEM", "AFTER_ENRICHMENT_ITEM")


def _mask(request: Request, allowed: tuple[str, ...]) -> set[str]:
    """The ``updateMask`` fields, each one ``allowed`` (Google takes camelCase or snake_case)."""
    raw = request.query_params.get("updateMask", "")
    fields = {f.strip() for f in raw.split(",") if f.strip()}
    if not fields:
        raise rpc_error(400, "Request must have an update mask.")
    normal = {_camel(f) for f in fields}
    unknown = normal - set(allowed)
    if unknown:
        raise rpc_error(400, f"Invalid update mask field: {', '.join(sorted(unknown))}.")
    return normal


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _item_ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("mediaItemIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise rpc_error(400, "Request must contain mediaItemIds.")
    if len(ids) > MAX_NEW_ITEMS:
        raise rpc_error(400, f"Request must have at most {MAX_NEW_ITEMS} media items.")
    return list(ids)


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(route_class=GoogleApiRoute, tags=["Photos Library v1"])

    def store() -> PhotosStore:
        return photos_store(state)

    def own_album(caller: Caller, album_id: str) -> Album:
        album = store().album(caller.sub, caller.app, album_id)
        if album is None:
            raise not_found()
        return album

    def album_view(caller: Caller, album: Album, request: Request) -> dict[str, Any]:
        items = store().items(caller.sub, caller.app, album.item_ids)
        return album_resource(album, items, base_url(state, request))

    @router.get("/v1/mediaItems:batchGet", summary="mediaItems.batchGet", response_model=None)
    async def batch_get(request: Request) -> Response:
        caller = await authorize(state, request, BATCH_GET)
        ids = _item_ids({"mediaItemIds": request.query_params.getlist("mediaItemIds")})
        origin = base_url(state, request)
        results: list[dict[str, Any]] = []
        for item_id in ids:
            item = store().item(caller.sub, caller.app, item_id)
            if item is None:
                status = {"code": 5, "message": "Requested entity was not found."}
                results.append({"status": status})
            else:
                results.append({"mediaItem": media_item_resource(item, origin)})
        return json_answer({"mediaItemResults": results}, request)

    @router.patch("/v1/mediaItems/{item_id}", summary="mediaItems.patch", response_model=None)
    async def patch_item(item_id: str, request: Request) -> Response:
        caller = await authorize(state, request, PATCH_ITEM)
        _mask(request, ("description",))
        description = (await json_body(request)).get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise rpc_error(
                400, f"The description must be text of {MAX_DESCRIPTION} characters or fewer."
            )
        item = store().item(caller.sub, caller.app, item_id)
        if item is None:
            raise not_found()
        with store().lock:
            item.description = description or None
        return json_answer(media_item_resource(item, base_url(state, request)), request)

    @router.patch("/v1/albums/{album_id}", summary="albums.patch", response_model=None)
    async def patch_album(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, PATCH_ALBUM)
        fields = _mask(request, ("title", "coverPhotoMediaItemId"))
        body = await json_body(request)
        album = own_album(caller, album_id)
        title, cover = body.get("title"), body.get("coverPhotoMediaItemId")
        if "title" in fields and (not isinstance(title, str) or len(title) > MAX_TITLE):
            raise rpc_error(
                400, f"The album title must be a string of {MAX_TITLE} characters or fewer."
            )
        if "coverPhotoMediaItemId" in fields and cover not in album.item_ids:
            raise rpc_error(400, "The cover photo must be a media item in the album.")
        with store().lock:
            if "title" in fields:
                album.title = str(title)
            if "coverPhotoMediaItemId" in fields:
                album.cover_item_id = str(cover)
        return json_answer(album_view(caller, album, request), request)

    @router.post(
        "/v1/albums/{album_id}:batchAddMediaItems",
        summary="albums.batchAddMediaItems",
        response_model=None,
    )
    async def batch_add(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, ADD_ITEMS)
        ids = _item_ids(await json_body(request))
        album = own_album(caller, album_id)
        if len(store().items(caller.sub, caller.app, ids)) != len(set(ids)):
            raise rpc_error(400, "Request contains an invalid media item id.")
        with store().lock:
            new = [i for i in dict.fromkeys(ids) if i not in album.item_ids]
            if len(album.item_ids) + len(new) > MAX_ALBUM_ITEMS:
                raise rpc_error(400, f"An album holds at most {MAX_ALBUM_ITEMS} media items.")
            album.item_ids.extend(new)
        return json_answer({}, request)

    @router.post(
        "/v1/albums/{album_id}:batchRemoveMediaItems",
        summary="albums.batchRemoveMediaItems",
        response_model=None,
    )
    async def batch_remove(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, REMOVE_ITEMS)
        ids = _item_ids(await json_body(request))
        album = own_album(caller, album_id)
        if any(i not in album.item_ids for i in ids):
            raise rpc_error(400, "Request contains a media item that is not in the album.")
        with store().lock:
            album.item_ids[:] = [i for i in album.item_ids if i not in ids]
            if album.cover_item_id in ids:
                album.cover_item_id = None
        return json_answer({}, request)

    @router.post(
        "/v1/albums/{album_id}:addEnrichment", summary="albums.addEnrichment", response_model=None
    )
    async def add_enrichment(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, ADD_ENRICHMENT)
        body = await json_body(request)
        album = own_album(caller, album_id)
        enrichment = _enrichment(body)
        enrichment_id = "AE" + secrets.token_urlsafe(32)
        with store().lock:
            album.enrichments[enrichment_id] = enrichment
        return json_answer({"enrichmentItem": {"id": enrichment_id}}, request)

    return router


def _enrichment(body: dict[str, Any]) -> dict[str, Any]:
    """The ``newEnrichmentItem``: exactly one kind, a text one with its text; and a position."""
    item = body.get("newEnrichmentItem")
    kinds = [k for k in ENRICHMENT_KINDS if isinstance(item, dict) and k in item]
    if not isinstance(item, dict) or len(kinds) != 1:
        raise rpc_error(
            400,
            "Request must contain exactly one of textEnrichment, locationEnrichment, "
            "mapEnrichment in newEnrichmentItem.",
        )
    if kinds == ["textEnrichment"] and not (item["textEnrichment"] or {}).get("text"):
        raise rpc_error(400, "A text enrichment must have text.")
    position = (body.get("albumPosition") or {}).get("position")
    if position not in POSITIONS:
        raise _position_error()
    return dict(item)


def _position_error() -> GoogleApiError:
    return rpc_error(400, f"albumPosition.position must be one of {', '.join(POSITIONS)}.")
