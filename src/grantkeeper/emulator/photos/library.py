"""Photos' data: each user's albums and media items, upload tokens and baseUrl keys, in memory.

Every album and item records the app that created it; since 2025 an app sees only its own.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime

from grantkeeper.clock import Clock
from grantkeeper.emulator.state import EmulatorState


@dataclass
class Album:
    id: str
    title: str
    app: str
    created: datetime
    item_ids: list[str] = field(default_factory=list)
    cover_item_id: str | None = None
    """Set by ``albums.patch``; otherwise the first item is the cover."""
    enrichments: dict[str, dict[str, object]] = field(default_factory=dict)
    """``albums.addEnrichment``: enrichment id → the ``newEnrichmentItem`` as sent."""


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


def new_photos_id() -> str:
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
        album = Album(new_photos_id(), title, app, self.clock.now())
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
