"""Photos Library API v1 under Google's 2025 rules, plus a control call that fills a library.

Since 31 March 2025 an app may list, search and get only the albums and media items *it created*
(google-protocol.md §8.1), and only three scopes remain: ``photoslibrary.appendonly`` (upload,
create albums and items), ``photoslibrary.readonly.appcreateddata`` (list, search, get) and
``photoslibrary.edit.appcreateddata``. A token holding only a removed scope (``photoslibrary``,
``photoslibrary.readonly``, ``photoslibrary.sharing``) is refused with 403, as Google does.

"The app" is the OAuth client's Cloud project (:func:`~grantkeeper.emulator.google_api.app_of`).
Photos are real JPEGs: the seeding call paints colourful, low-contrast pictures with Pillow, so
an "enhance" job (auto-contrast, sharpen) visibly changes them, and ``mediaMetadata`` carries the
real width and height. The routes are here; the library lives in :mod:`.photos_library`, the
resources and paging in :mod:`.photos_resources`, the pictures in :mod:`.photos_pictures`.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from grantkeeper.emulator.errors import UPLOAD_AUTH_ERROR, ControlError, GoogleApiError, rpc_error
from grantkeeper.emulator.google_api import (
    ApiMethod,
    Caller,
    FieldSelectionError,
    GoogleApiRoute,
    app_of,
    apply_fields,
    authorize,
    base_url,
    count_call,
    parse_fields,
)
from grantkeeper.emulator.photos.library import (
    Album,
    MediaItem,
    PhotosStore,
    UploadedBytes,
    new_photos_id,
    photos_store,
)
from grantkeeper.emulator.photos.pictures import generate_photo, image_facts, rendition
from grantkeeper.emulator.photos.resources import (
    album_resource,
    decode_page_token,
    media_item_resource,
    page_size,
    paged,
)
from grantkeeper.emulator.state import EmulatorState

SERVICE = "photoslibrary.googleapis.com"
_SCOPE = "https://www.googleapis.com/auth/photoslibrary"
APPENDONLY = _SCOPE + ".appendonly"
READONLY_APPCREATED = _SCOPE + ".readonly.appcreateddata"
EDIT_APPCREATED = _SCOPE + ".edit.appcreateddata"
#: Removed on 2025-03-31; tokens carrying only these are refused by every method.
REMOVED_SCOPES = frozenset({_SCOPE, _SCOPE + ".readonly", _SCOPE + ".sharing"})


def photos_method(rpc: str, endpoint: str, *scopes: str) -> ApiMethod:
    return ApiMethod(
        SERVICE,
        f"google.photos.library.v1.PhotosLibrary.{rpc}",
        f"photos.{endpoint}",
        frozenset(scopes),
        bare_errors=True,
    )


LIST_ALBUMS = photos_method("ListAlbums", "albums.list", READONLY_APPCREATED)
GET_ALBUM = photos_method("GetAlbum", "albums.get", READONLY_APPCREATED)
CREATE_ALBUM = photos_method("CreateAlbum", "albums.create", APPENDONLY)
SEARCH = photos_method("SearchMediaItems", "mediaItems.search", READONLY_APPCREATED)
LIST_ITEMS = photos_method("ListMediaItems", "mediaItems.list", READONLY_APPCREATED)
GET_ITEM = photos_method("GetMediaItem", "mediaItems.get", READONLY_APPCREATED)
BATCH_CREATE = photos_method("BatchCreateMediaItems", "mediaItems.batchCreate", APPENDONLY)
UPLOAD = photos_method("Upload", "uploads", APPENDONLY)

ALBUM_PAGE = (20, 50)  # (default, maximum) pageSize of albums.list
ITEM_PAGE = (25, 100)  # (default, maximum) pageSize of mediaItems.search and .list
MAX_NEW_ITEMS = 50
MAX_ALBUM_ITEMS = 20_000
MAX_TITLE = 500
MAX_PHOTO_BYTES = 200 * 1024 * 1024
UPLOAD_TOKEN_TTL = timedelta(days=1)
ITEM_FAILED = "Failed: There was an error while trying to create this media item."
NOT_IMAGE = "NOT_IMAGE: There was an error while trying to create this media item."
NO_ALBUM_PERMISSION = "No permission to add media items to this album."


def json_answer(value: Any, request: Request) -> Response:
    spec = request.query_params.get("fields")
    if spec:
        try:
            value = apply_fields(value, parse_fields(spec))
        except FieldSelectionError:
            raise rpc_error(400, f"Invalid field selection {spec}") from None
    return Response(json.dumps(value, indent=2), media_type="application/json; charset=UTF-8")


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise rpc_error(400, "Invalid JSON payload received.") from None
    if not isinstance(value, dict):
        raise rpc_error(400, "Invalid JSON payload received. Expected an object.")
    return value


def not_found() -> GoogleApiError:
    return rpc_error(404, "Requested entity was not found.")


class SeedRequest(BaseModel):
    """``POST /emulator/users/{sub}/photos``: pictures "created by" ``client_id``'s app."""

    client_id: str
    album_title: str = Field("Inbox", max_length=MAX_TITLE)
    count: int = Field(3, ge=1, le=MAX_NEW_ITEMS)
    width: int = Field(640, ge=16, le=4096)
    height: int = Field(480, ge=16, le=4096)
    seed: int | None = None


def build_router(state: EmulatorState) -> APIRouter:
    """Photos Library v1 (``/v1/albums``, ``/v1/mediaItems…``, ``/v1/uploads``), baseUrl
    downloads (``/lh3/…``) and the seeding control call."""

    def store() -> PhotosStore:
        # Looked up on each call: POST /emulator/reset replaces it with an empty one.
        return photos_store(state)

    router = APIRouter(route_class=GoogleApiRoute, tags=["Photos Library v1"])

    def album_view(caller: Caller, album: Album, origin: str) -> dict[str, Any]:
        return album_resource(album, store().items(caller.sub, caller.app, album.item_ids), origin)

    @router.get("/v1/albums", summary="albums.list", response_model=None)
    async def albums_list(request: Request) -> Response:
        caller = await authorize(state, request, LIST_ALBUMS)
        query = request.query_params
        size = page_size(query.get("pageSize"), ALBUM_PAGE)
        offset = decode_page_token(query.get("pageToken"), "albums")
        page, token = paged(store().albums(caller.sub, caller.app), offset, size, "albums")
        origin = base_url(state, request)
        body: dict[str, Any] = {}
        if page:
            body["albums"] = [album_view(caller, a, origin) for a in page]
        if token:
            body["nextPageToken"] = token
        return json_answer(body, request)

    @router.post("/v1/albums", summary="albums.create", response_model=None)
    async def albums_create(request: Request) -> Response:
        caller = await authorize(state, request, CREATE_ALBUM)
        album = (await json_body(request)).get("album")
        if not isinstance(album, dict):
            raise rpc_error(400, "Request must contain an album.")
        title = album.get("title", "")
        if not isinstance(title, str) or len(title) > MAX_TITLE:
            raise rpc_error(
                400, f"The album title must be a string of {MAX_TITLE} characters or fewer."
            )
        created = store().create_album(caller.sub, caller.app, title)
        return json_answer(album_view(caller, created, base_url(state, request)), request)

    @router.get("/v1/albums/{album_id}", summary="albums.get", response_model=None)
    async def albums_get(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, GET_ALBUM)
        album = store().album(caller.sub, caller.app, album_id)
        if album is None:
            raise not_found()
        return json_answer(album_view(caller, album, base_url(state, request)), request)

    @router.post("/v1/mediaItems:search", summary="mediaItems.search", response_model=None)
    async def media_items_search(request: Request) -> Response:
        caller = await authorize(state, request, SEARCH)
        body = await json_body(request)
        album_id, filters = body.get("albumId"), body.get("filters")
        if album_id and filters:
            raise rpc_error(400, "An albumId and filters cannot both be set in a search request.")
        if album_id:
            album = store().album(caller.sub, caller.app, str(album_id))
            if album is None:
                raise not_found()
            found = store().items(caller.sub, caller.app, album.item_ids)
        else:
            found = store().items(caller.sub, caller.app)
            types = ((filters or {}).get("mediaTypeFilter") or {}).get("mediaTypes") or []
            if "VIDEO" in types:  # the emulator holds photos only
                found = []
        size = page_size(body.get("pageSize"), ITEM_PAGE)
        offset = decode_page_token(body.get("pageToken"), "search")
        return _items_page(found, offset, size, "search", request)

    @router.get("/v1/mediaItems", summary="mediaItems.list", response_model=None)
    async def media_items_list(request: Request) -> Response:
        caller = await authorize(state, request, LIST_ITEMS)
        query = request.query_params
        size = page_size(query.get("pageSize"), ITEM_PAGE)
        offset = decode_page_token(query.get("pageToken"), "list")
        return _items_page(store().items(caller.sub, caller.app), offset, size, "list", request)

    def _items_page(
        found: list[MediaItem], offset: int, size: int, kind: str, request: Request
    ) -> Response:
        page, token = paged(found, offset, size, kind)
        origin = base_url(state, request)
        body: dict[str, Any] = {}
        if page:
            body["mediaItems"] = [media_item_resource(i, origin) for i in page]
        if token:
            body["nextPageToken"] = token
        return json_answer(body, request)

    @router.get("/v1/mediaItems/{item_id}", summary="mediaItems.get", response_model=None)
    async def media_items_get(item_id: str, request: Request) -> Response:
        caller = await authorize(state, request, GET_ITEM)
        item = store().item(caller.sub, caller.app, item_id)
        if item is None:
            raise not_found()
        return json_answer(media_item_resource(item, base_url(state, request)), request)

    @router.post(
        "/v1/uploads", summary="Upload bytes (returns an upload token)", response_model=None
    )
    async def uploads(request: Request) -> Response:
        try:
            caller = await authorize(state, request, UPLOAD)
        except GoogleApiError:
            return Response(UPLOAD_AUTH_ERROR, 401, media_type="text/html; charset=UTF-8")
        protocol = request.headers.get("x-goog-upload-protocol", "raw")
        if protocol.lower() != "raw":
            raise rpc_error(400, f"Unsupported X-Goog-Upload-Protocol {protocol!r}; use raw.")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PHOTO_BYTES:
            raise rpc_error(413, "The file is larger than 200 MB.")
        content = await request.body()
        if not content:
            raise rpc_error(400, "The request has no bytes to upload.")
        token = store().put_upload(
            UploadedBytes(
                sub=caller.sub,
                app=caller.app,
                content=content,
                filename=request.headers.get("x-goog-upload-file-name"),
                expires_at=state.clock.now() + UPLOAD_TOKEN_TTL,
            )
        )
        return Response(token, media_type="text/plain")

    @router.post(
        "/v1/mediaItems:batchCreate", summary="mediaItems.batchCreate", response_model=None
    )
    async def media_items_batch_create(request: Request) -> Response:
        caller = await authorize(state, request, BATCH_CREATE)
        body = await json_body(request)
        new_items = body.get("newMediaItems")
        if not isinstance(new_items, list) or not new_items:
            raise rpc_error(400, "Request must contain at least one new media item.")
        if len(new_items) > MAX_NEW_ITEMS:
            raise rpc_error(
                400,
                f"Request must contain at most {MAX_NEW_ITEMS} new media items "
                f"(it has {len(new_items)}).",
            )
        position = (body.get("albumPosition") or {}).get("position")
        album: Album | None = None
        if body.get("albumId"):
            # Another app's album and a missing one look the same: no existence leak.
            album = store().album(caller.sub, caller.app, str(body["albumId"]))
            if album is None:
                raise rpc_error(400, NO_ALBUM_PERMISSION)
            if len(album.item_ids) + len(new_items) > MAX_ALBUM_ITEMS:
                raise rpc_error(400, f"An album holds at most {MAX_ALBUM_ITEMS} media items.")
        elif position:
            raise rpc_error(400, "albumPosition can be set only together with albumId.")
        results = [
            await _create_item(caller, album, position == "FIRST_IN_ALBUM", entry, request)
            for entry in (reversed(new_items) if position == "FIRST_IN_ALBUM" else new_items)
        ]
        if position == "FIRST_IN_ALBUM":
            results.reverse()
        return json_answer({"newMediaItemResults": results}, request)

    async def _create_item(
        caller: Caller, album: Album | None, first: bool, entry: Any, request: Request
    ) -> dict[str, Any]:
        simple = entry.get("simpleMediaItem") if isinstance(entry, dict) else None
        token = simple.get("uploadToken") if isinstance(simple, dict) else None
        result: dict[str, Any] = {"uploadToken": token} if isinstance(token, str) else {}
        upload = (
            store().take_upload(token, caller.sub, caller.app) if isinstance(token, str) else None
        )
        if upload is None:
            result["status"] = {"code": 3, "message": ITEM_FAILED}
            return result
        facts = await anyio.to_thread.run_sync(image_facts, upload.content)
        if facts is None:
            result["status"] = {"code": 3, "message": NOT_IMAGE}
            return result
        mime, width, height = facts
        assert isinstance(simple, dict)
        item = MediaItem(
            id=new_photos_id(),
            app=caller.app,
            filename=str(simple.get("fileName") or upload.filename or "photo"),
            mime_type=mime,
            width=width,
            height=height,
            created=state.clock.now(),
            content=upload.content,
            media_key=secrets.token_urlsafe(48),
            description=entry.get("description") or None,
        )
        store().add_item(caller.sub, item, album, first)
        result["status"] = {"message": "Success"}
        result["mediaItem"] = media_item_resource(item, base_url(state, request))
        return result

    @router.get("/lh3/{spec}", summary="baseUrl download (=d, =wN-hN)", response_model=None)
    async def base_url_download(spec: str) -> Response:
        # Like Google's baseUrls, these need no token: the unguessable key is the credential.
        await count_call(state, "photos.media")
        key, _, options = spec.partition("=")
        item = store().by_media_key(key)
        if item is None:
            return Response(status_code=404)
        content = await anyio.to_thread.run_sync(rendition, item.content, options)
        media_type = item.mime_type if content is item.content else "image/jpeg"
        return Response(content, media_type=media_type)

    @router.post("/emulator/users/{sub}/photos", tags=["Emulator control"], response_model=None)
    async def seed_photos(sub: str, seed: SeedRequest, request: Request) -> Response:
        """Put ``count`` generated pictures into the user's album ``album_title`` (made if
        missing), as if ``client_id``'s app had uploaded them."""
        with state.lock:
            known_user = sub in state.users
            known_client = seed.client_id in state.clients
        if not known_user:
            raise ControlError(404, "unknown_user", f"No user with sub {sub}.")
        if not known_client:
            raise ControlError(404, "unknown_client", "client_id is unknown.")
        app = app_of(state, seed.client_id)
        caller = Caller(sub, app, seed.client_id, frozenset())
        album = next((a for a in store().albums(sub, app) if a.title == seed.album_title), None)
        album = album or store().create_album(sub, app, seed.album_title)
        first = seed.seed if seed.seed is not None else secrets.randbelow(1 << 30)
        origin = base_url(state, request)
        created = []
        for n in range(seed.count):
            content = await anyio.to_thread.run_sync(
                generate_photo, first + n, seed.width, seed.height
            )
            item = MediaItem(
                id=new_photos_id(),
                app=app,
                filename=f"IMG_{first % 10000 + n:04d}.jpg",
                mime_type="image/jpeg",
                width=seed.width,
                height=seed.height,
                created=state.clock.now(),
                content=content,
                media_key=secrets.token_urlsafe(48),
            )
            store().add_item(sub, item, album, first=False)
            created.append(media_item_resource(item, origin))
        body = {"album": album_view(caller, album, origin), "mediaItems": created}
        return Response(json.dumps(body), status_code=201, media_type="application/json")

    return router
