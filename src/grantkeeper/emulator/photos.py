"""Photos Library API v1 under Google's 2025 rules, plus a control call that fills a library.

Since 31 March 2025 an app may list, search and get only the albums and media items *it created*
(google-protocol.md §8.1), and only three scopes remain: ``photoslibrary.appendonly`` (upload,
create albums and items), ``photoslibrary.readonly.appcreateddata`` (list, search, get) and
``photoslibrary.edit.appcreateddata``. A token holding only a removed scope (``photoslibrary``,
``photoslibrary.readonly``, ``photoslibrary.sharing``) is refused with 403, as Google does.

"The app" is the OAuth client's Cloud project (:func:`~grantkeeper.emulator.google_api.app_of`).
Photos are real JPEGs: the seeding call paints colourful, low-contrast pictures with Pillow, so
an "enhance" job (auto-contrast, sharpen) visibly changes them, and ``mediaMetadata`` carries the
real width and height.
"""

from __future__ import annotations

import base64
import io
import json
import random
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, UnidentifiedImageError
from pydantic import BaseModel, Field

from grantkeeper.clock import Clock
from grantkeeper.emulator.control import ControlError
from grantkeeper.emulator.google_api import (
    ApiMethod,
    Caller,
    FieldSelectionError,
    GoogleApiError,
    GoogleApiRoute,
    app_of,
    apply_fields,
    authorize,
    base_url,
    count_call,
    parse_fields,
    rpc_error,
)
from grantkeeper.emulator.state import EmulatorState

SERVICE = "photoslibrary.googleapis.com"
_SCOPE = "https://www.googleapis.com/auth/photoslibrary"
APPENDONLY = _SCOPE + ".appendonly"
READONLY_APPCREATED = _SCOPE + ".readonly.appcreateddata"
EDIT_APPCREATED = _SCOPE + ".edit.appcreateddata"
#: Removed on 2025-03-31; tokens carrying only these are refused by every method.
REMOVED_SCOPES = frozenset({_SCOPE, _SCOPE + ".readonly", _SCOPE + ".sharing"})


def _method(rpc: str, endpoint: str, *scopes: str) -> ApiMethod:
    return ApiMethod(
        SERVICE,
        f"google.photos.library.v1.PhotosLibrary.{rpc}",
        f"photos.{endpoint}",
        frozenset(scopes),
    )


LIST_ALBUMS = _method("ListAlbums", "albums.list", READONLY_APPCREATED)
GET_ALBUM = _method("GetAlbum", "albums.get", READONLY_APPCREATED)
CREATE_ALBUM = _method("CreateAlbum", "albums.create", APPENDONLY)
SEARCH = _method("SearchMediaItems", "mediaItems.search", READONLY_APPCREATED)
LIST_ITEMS = _method("ListMediaItems", "mediaItems.list", READONLY_APPCREATED)
GET_ITEM = _method("GetMediaItem", "mediaItems.get", READONLY_APPCREATED)
BATCH_CREATE = _method("BatchCreateMediaItems", "mediaItems.batchCreate", APPENDONLY)
UPLOAD = _method("Upload", "uploads", APPENDONLY)

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


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Album:
    id: str
    title: str
    app: str
    created: datetime
    item_ids: list[str] = field(default_factory=list)


@dataclass
class MediaItem:
    id: str
    app: str
    filename: str
    mime_type: str
    width: int
    height: int
    created: datetime
    content: bytes
    media_key: str  # the unguessable part of baseUrl
    description: str | None = None


@dataclass
class UploadedBytes:
    sub: str
    app: str
    content: bytes
    filename: str | None
    expires_at: datetime
    used: bool = False


@dataclass
class _Library:
    albums: dict[str, Album] = field(default_factory=dict)
    items: dict[str, MediaItem] = field(default_factory=dict)


def _photos_id() -> str:
    """A Photos-looking id: long, URL-safe, starting with "A" as Google's do."""
    return "AL" + secrets.token_urlsafe(48)


class PhotosStore:
    """Every user's library, upload tokens and baseUrl keys, in memory, behind one lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._libraries: dict[str, _Library] = {}
        self._uploads: dict[str, UploadedBytes] = {}
        self._media: dict[str, MediaItem] = {}

    def library(self, sub: str) -> _Library:
        with self.lock:
            return self._libraries.setdefault(sub, _Library())

    def albums(self, sub: str, app: str) -> list[Album]:
        with self.lock:
            return [a for a in self.library(sub).albums.values() if a.app == app]

    def album(self, sub: str, app: str, album_id: str) -> Album | None:
        with self.lock:
            album = self.library(sub).albums.get(album_id)
            return album if album is not None and album.app == app else None

    def create_album(self, sub: str, app: str, title: str) -> Album:
        album = Album(_photos_id(), title, app, self.clock.now())
        with self.lock:
            self.library(sub).albums[album.id] = album
        return album

    def items(self, sub: str, app: str, ids: list[str] | None = None) -> list[MediaItem]:
        """The app's items: those of ``ids`` in that order, or all of them, newest first."""
        with self.lock:
            library = self.library(sub).items
            if ids is not None:
                return [library[i] for i in ids if i in library and library[i].app == app]
            mine = [item for item in library.values() if item.app == app]
            return sorted(mine, key=lambda item: item.created, reverse=True)

    def item(self, sub: str, app: str, item_id: str) -> MediaItem | None:
        with self.lock:
            item = self.library(sub).items.get(item_id)
            return item if item is not None and item.app == app else None

    def add_item(self, sub: str, item: MediaItem, album: Album | None, first: bool) -> None:
        with self.lock:
            self.library(sub).items[item.id] = item
            self._media[item.media_key] = item
            if album is not None:
                if first:
                    album.item_ids.insert(0, item.id)
                else:
                    album.item_ids.append(item.id)

    def by_media_key(self, key: str) -> MediaItem | None:
        with self.lock:
            return self._media.get(key)

    def put_upload(self, upload: UploadedBytes) -> str:
        token = "CAIS" + secrets.token_urlsafe(64)
        with self.lock:
            self._uploads[token] = upload
        return token

    def take_upload(self, token: str, sub: str, app: str) -> UploadedBytes | None:
        """The bytes behind an upload token of this user and app, once, within a day."""
        with self.lock:
            upload = self._uploads.get(token)
            if (
                upload is None
                or upload.used
                or upload.sub != sub
                or upload.app != app
                or upload.expires_at <= self.clock.now()
            ):
                return None
            upload.used = True
            return upload


def photos_store(state: EmulatorState) -> PhotosStore:
    """The Photos libraries of one emulator (dropped by its reset)."""
    return state.extension("photos", lambda: PhotosStore(state.clock))


# --------------------------------------------------------------------------------------------
# Pure rules and resources
# --------------------------------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def media_item_resource(item: MediaItem, origin: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": item.id,
        "productUrl": f"https://photos.google.com/lr/photo/{item.id}",
        "baseUrl": f"{origin}/lh3/{item.media_key}",
        "mimeType": item.mime_type,
        "mediaMetadata": {
            "creationTime": _rfc3339(item.created),
            "width": str(item.width),
            "height": str(item.height),
            "photo": {"cameraMake": "grantkeeper", "cameraModel": "emulator"},
        },
        "filename": item.filename,
    }
    if item.description:
        resource["description"] = item.description
    return resource


def album_resource(album: Album, items: list[MediaItem], origin: str) -> dict[str, Any]:
    # proto3 JSON: a zero count and an absent cover are left out, as Google's answers do.
    resource: dict[str, Any] = {
        "id": album.id,
        "title": album.title,
        "productUrl": f"https://photos.google.com/lr/album/{album.id}",
        "isWriteable": True,
    }
    if items:
        resource["mediaItemsCount"] = str(len(items))
        resource["coverPhotoBaseUrl"] = f"{origin}/lh3/{items[0].media_key}"
        resource["coverPhotoMediaItemId"] = items[0].id
    return resource


def page_size(raw: Any, limits: tuple[int, int]) -> int:
    """A pageSize within Google's bounds: absent or 0 means the default; above the maximum is
    cut to it; negative or not a number is an error."""
    default, maximum = limits
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise rpc_error(400, "Invalid value for pageSize.") from None
    if size < 0:
        raise rpc_error(400, "The page size must not be negative.")
    return min(size, maximum) or default


def encode_page_token(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str | None, kind: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, offset = raw.split(":", 1)
        if prefix == kind and int(offset) >= 0:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise rpc_error(400, "Invalid page token.")


def paged(items: list[Any], offset: int, size: int, kind: str) -> tuple[list[Any], str | None]:
    page = items[offset : offset + size]
    more = offset + size < len(items)
    return page, encode_page_token(kind, offset + size) if more else None


def image_facts(content: bytes) -> tuple[str, int, int] | None:
    """(MIME type, width, height) of an image Pillow can read, else ``None``."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            mime = Image.MIME.get(image.format or "")
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return (mime, width, height) if mime else None


def rendition(content: bytes, options: str) -> bytes:
    """The bytes a ``baseUrl=<options>`` answer carries.

    ``d`` is the original; ``wN``, ``hN`` (``w200-h100``) scale the picture down to fit, keeping
    its aspect ratio as Google does without ``-c``; anything else gets the original.
    """
    parts = {p[:1]: p[1:] for p in options.split("-") if p}
    if "d" in parts or not ({"w", "h"} & parts.keys()):
        return content
    try:
        width = int(parts.get("w") or 0)
        height = int(parts.get("h") or 0)
    except ValueError:
        return content
    with Image.open(io.BytesIO(content)) as image:
        box = (width or image.width, height or image.height)
        if box[0] >= image.width and box[1] >= image.height:
            return content
        fitted = image.convert("RGB")
        fitted.thumbnail(box)
        out = io.BytesIO()
        fitted.save(out, "JPEG", quality=85)
        return out.getvalue()


def generate_photo(seed: int, width: int = 640, height: int = 480) -> bytes:
    """A colourful but flat (low-contrast, slightly soft) JPEG, the same for the same seed.

    Auto-contrast and sharpening change such a picture a lot, which is what a demo of an
    "enhance" job needs to show.
    """
    rng = random.Random(seed)  # noqa: S311 -- pictures, not secrets; repeatable by seed

    def colour() -> tuple[int, int, int]:
        hue = rng.random()
        # Vivid colours from a hue, via the HSV cone (Pillow has no direct helper for one).
        rgb = Image.new("HSV", (1, 1), (int(hue * 255), 200, 230)).convert("RGB").getpixel((0, 0))
        assert isinstance(rgb, tuple)
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))

    mask = Image.linear_gradient("L").rotate(rng.uniform(0, 360)).resize((width, height))
    picture = Image.composite(
        Image.new("RGB", (width, height), colour()),
        Image.new("RGB", (width, height), colour()),
        mask,
    )
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(5, 9)):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randint(min(width, height) // 12, min(width, height) // 3)
        box = (x - radius, y - radius, x + radius, y + radius)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour())
        else:
            draw.rectangle(box, fill=colour())
    picture = picture.filter(ImageFilter.GaussianBlur(1.5))
    picture = ImageEnhance.Contrast(picture).enhance(0.35)
    exif = Image.Exif()
    exif[0x010F] = "grantkeeper"  # Make
    exif[0x0110] = "emulator"  # Model
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=88, exif=exif)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Router
# --------------------------------------------------------------------------------------------


def _json(value: Any, request: Request) -> Response:
    spec = request.query_params.get("fields")
    if spec:
        try:
            value = apply_fields(value, parse_fields(spec))
        except FieldSelectionError:
            raise rpc_error(400, f"Invalid field selection {spec}") from None
    return Response(json.dumps(value, indent=2), media_type="application/json; charset=UTF-8")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise rpc_error(400, "Invalid JSON payload received.") from None
    if not isinstance(value, dict):
        raise rpc_error(400, "Invalid JSON payload received. Expected an object.")
    return value


def _not_found() -> GoogleApiError:
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
    store = photos_store(state)
    router = APIRouter(route_class=GoogleApiRoute, tags=["Photos Library v1"])

    def album_view(caller: Caller, album: Album, origin: str) -> dict[str, Any]:
        return album_resource(album, store.items(caller.sub, caller.app, album.item_ids), origin)

    @router.get("/v1/albums", summary="albums.list", response_model=None)
    async def albums_list(request: Request) -> Response:
        caller = await authorize(state, request, LIST_ALBUMS)
        query = request.query_params
        size = page_size(query.get("pageSize"), ALBUM_PAGE)
        offset = decode_page_token(query.get("pageToken"), "albums")
        page, token = paged(store.albums(caller.sub, caller.app), offset, size, "albums")
        origin = base_url(state, request)
        body: dict[str, Any] = {}
        if page:
            body["albums"] = [album_view(caller, a, origin) for a in page]
        if token:
            body["nextPageToken"] = token
        return _json(body, request)

    @router.post("/v1/albums", summary="albums.create", response_model=None)
    async def albums_create(request: Request) -> Response:
        caller = await authorize(state, request, CREATE_ALBUM)
        album = (await _json_body(request)).get("album")
        if not isinstance(album, dict):
            raise rpc_error(400, "Request must contain an album.")
        title = album.get("title", "")
        if not isinstance(title, str) or len(title) > MAX_TITLE:
            raise rpc_error(
                400, f"The album title must be a string of {MAX_TITLE} characters or fewer."
            )
        created = store.create_album(caller.sub, caller.app, title)
        return _json(album_view(caller, created, base_url(state, request)), request)

    @router.get("/v1/albums/{album_id}", summary="albums.get", response_model=None)
    async def albums_get(album_id: str, request: Request) -> Response:
        caller = await authorize(state, request, GET_ALBUM)
        album = store.album(caller.sub, caller.app, album_id)
        if album is None:
            raise _not_found()
        return _json(album_view(caller, album, base_url(state, request)), request)

    @router.post("/v1/mediaItems:search", summary="mediaItems.search", response_model=None)
    async def media_items_search(request: Request) -> Response:
        caller = await authorize(state, request, SEARCH)
        body = await _json_body(request)
        album_id, filters = body.get("albumId"), body.get("filters")
        if album_id and filters:
            raise rpc_error(400, "An albumId and filters cannot both be set in a search request.")
        if album_id:
            album = store.album(caller.sub, caller.app, str(album_id))
            if album is None:
                raise _not_found()
            found = store.items(caller.sub, caller.app, album.item_ids)
        else:
            found = store.items(caller.sub, caller.app)
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
        return _items_page(store.items(caller.sub, caller.app), offset, size, "list", request)

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
        return _json(body, request)

    @router.get("/v1/mediaItems/{item_id}", summary="mediaItems.get", response_model=None)
    async def media_items_get(item_id: str, request: Request) -> Response:
        caller = await authorize(state, request, GET_ITEM)
        item = store.item(caller.sub, caller.app, item_id)
        if item is None:
            raise _not_found()
        return _json(media_item_resource(item, base_url(state, request)), request)

    @router.post(
        "/v1/uploads", summary="Upload bytes (returns an upload token)", response_model=None
    )
    async def uploads(request: Request) -> Response:
        caller = await authorize(state, request, UPLOAD)
        protocol = request.headers.get("x-goog-upload-protocol", "raw")
        if protocol.lower() != "raw":
            raise rpc_error(400, f"Unsupported X-Goog-Upload-Protocol {protocol!r}; use raw.")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PHOTO_BYTES:
            raise rpc_error(413, "The file is larger than 200 MB.")
        content = await request.body()
        if not content:
            raise rpc_error(400, "The request has no bytes to upload.")
        token = store.put_upload(
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
        body = await _json_body(request)
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
            album = store.album(caller.sub, caller.app, str(body["albumId"]))
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
        return _json({"newMediaItemResults": results}, request)

    async def _create_item(
        caller: Caller, album: Album | None, first: bool, entry: Any, request: Request
    ) -> dict[str, Any]:
        simple = entry.get("simpleMediaItem") if isinstance(entry, dict) else None
        token = simple.get("uploadToken") if isinstance(simple, dict) else None
        result: dict[str, Any] = {"uploadToken": token} if isinstance(token, str) else {}
        upload = (
            store.take_upload(token, caller.sub, caller.app) if isinstance(token, str) else None
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
            id=_photos_id(),
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
        store.add_item(caller.sub, item, album, first)
        result["status"] = {"message": "Success"}
        result["mediaItem"] = media_item_resource(item, base_url(state, request))
        return result

    @router.get("/lh3/{spec}", summary="baseUrl download (=d, =wN-hN)", response_model=None)
    async def base_url_download(spec: str) -> Response:
        # Like Google's baseUrls, these need no token: the unguessable key is the credential.
        await count_call(state, "photos.media")
        key, _, options = spec.partition("=")
        item = store.by_media_key(key)
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
        album = next((a for a in store.albums(sub, app) if a.title == seed.album_title), None)
        album = album or store.create_album(sub, app, seed.album_title)
        first = seed.seed if seed.seed is not None else secrets.randbelow(1 << 30)
        origin = base_url(state, request)
        created = []
        for n in range(seed.count):
            content = await anyio.to_thread.run_sync(
                generate_photo, first + n, seed.width, seed.height
            )
            item = MediaItem(
                id=_photos_id(),
                app=app,
                filename=f"IMG_{first % 10000 + n:04d}.jpg",
                mime_type="image/jpeg",
                width=seed.width,
                height=seed.height,
                created=state.clock.now(),
                content=content,
                media_key=secrets.token_urlsafe(48),
            )
            store.add_item(sub, item, album, first=False)
            created.append(media_item_resource(item, origin))
        body = {"album": album_view(caller, album, origin), "mediaItems": created}
        return Response(json.dumps(body), status_code=201, media_type="application/json")

    return router
