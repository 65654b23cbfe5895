"""Photos Library v1 resources (proto3 JSON) and paging, as pure functions."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from grantkeeper.emulator.errors import rpc_error
from grantkeeper.emulator.photos.library import Album, MediaItem


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
        cover = next((i for i in items if i.id == album.cover_item_id), items[0])
        resource["mediaItemsCount"] = str(len(items))
        resource["coverPhotoBaseUrl"] = f"{origin}/lh3/{cover.media_key}"
        resource["coverPhotoMediaItemId"] = cover.id
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
