"""Picking sessions and the base URLs of picked items, in memory, behind one lock.

A session belongs to one user and one app (the OAuth client's Cloud project). The user picks
from their whole Google Photos library (:mod:`grantkeeper.emulator.photos.library`), including
photos no app created, which the Library API keeps hiding from apps. Listing picked items mints
base URLs that work for ``base_url_ttl`` seconds on the emulator's clock, for that user's tokens.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from grantkeeper.clock import Clock
from grantkeeper.emulator.photos.library import MediaItem, PhotosStore, photos_store
from grantkeeper.emulator.state import EmulatorState


class PickerSettings(BaseModel):
    """What Google does not document precisely; ``POST /emulator/photospicker/settings``."""

    model_config = ConfigDict(extra="forbid")

    session_ttl: int = Field(3600, ge=1)
    """Seconds from ``sessions.create`` to ``expireTime`` [U]."""
    poll_interval: float = Field(5.0, gt=0)
    """``pollingConfig.pollInterval`` in seconds [U]."""
    base_url_ttl: int = Field(3600, ge=1)
    """Seconds a listed ``baseUrl`` works: 60 minutes (Google's media-items guide)."""
    max_open_sessions: int = Field(100, ge=1)
    """Live sessions per user and app before ``sessions.create`` answers RESOURCE_EXHAUSTED
    (Google documents the error, not the number) [U]."""


#: ``pickingConfig.maxItemCount`` when the app sets none (Google's reference: 2000).
DEFAULT_MAX_ITEMS = 2000


@dataclass
class PickingSession:
    id: str
    sub: str
    app: str
    created: datetime
    expires: datetime
    max_items: int
    request_id: str | None = None
    picked: list[str] = field(default_factory=list)
    """Ids of the picked library items, in the order the user picked them."""
    done: bool = False
    """The user tapped Done: ``mediaItemsSet`` is true and the picker page no longer works."""


@dataclass(frozen=True)
class BaseUrlGrant:
    """What a minted base URL opens: one item of one user's library, for the app that listed
    it, until ``expires``."""

    sub: str
    app: str
    item_id: str
    expires: datetime


class PickerError(Exception):
    """A picking request the user (or a control call) cannot make; ``reason`` is stable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PickerStore:
    """Every user's picking sessions and the base URLs minted for their picked items."""

    def __init__(self, clock: Clock, photos: PhotosStore) -> None:
        self.clock = clock
        self.photos = photos
        self.settings = PickerSettings()
        self.lock = threading.RLock()
        self._sessions: dict[str, PickingSession] = {}
        self._base_urls: dict[str, BaseUrlGrant] = {}

    # -- sessions --------------------------------------------------------------------------

    def live(self, session: PickingSession) -> bool:
        return self.clock.now() < session.expires

    def create(
        self, sub: str, app: str, max_items: int, request_id: str | None = None
    ) -> PickingSession:
        """A new session (or, for a repeated ``request_id``, the one it already made).

        Raises:
            PickerError: ``too_many_sessions`` when the user and app hold too many live ones.
        """
        now = self.clock.now()
        with self.lock:
            mine = [s for s in self._sessions.values() if s.sub == sub and s.app == app]
            if request_id is not None:
                repeated = next((s for s in mine if s.request_id == request_id), None)
                if repeated is not None and self.live(repeated):
                    return repeated
            if sum(1 for s in mine if self.live(s)) >= self.settings.max_open_sessions:
                raise PickerError(
                    "too_many_sessions",
                    "Too many picking sessions are open for this user. Delete finished sessions "
                    "with sessions.delete.",
                )
            session = PickingSession(
                id=str(uuid.uuid4()),
                sub=sub,
                app=app,
                created=now,
                expires=now + timedelta(seconds=self.settings.session_ttl),
                max_items=max_items,
                request_id=request_id,
            )
            self._sessions[session.id] = session
            return session

    def get(
        self, session_id: str, sub: str | None = None, app: str | None = None
    ) -> PickingSession | None:
        """A live session, optionally only if it is this user's and app's (else ``None``: another
        user's session and a missing one look the same)."""
        with self.lock:
            session = self._sessions.get(session_id)
        if session is None or not self.live(session):
            return None
        if (sub is not None and session.sub != sub) or (app is not None and session.app != app):
            return None
        return session

    def sessions(self) -> list[PickingSession]:
        with self.lock:
            return [s for s in self._sessions.values() if self.live(s)]

    def delete(self, session_id: str) -> None:
        with self.lock:
            self._sessions.pop(session_id, None)

    def library(self, sub: str) -> list[MediaItem]:
        """The user's whole library, newest first, whichever app (if any) created each item."""
        with self.photos.lock:
            items = list(self.photos.library(sub).items.values())
        return sorted(items, key=lambda item: item.created, reverse=True)

    def pick(self, session: PickingSession, item_ids: list[str]) -> None:
        """The user picks ``item_ids`` from their library and taps Done.

        Raises:
            PickerError: ``session_done``, ``nothing_picked``, ``too_many_items`` or
            ``unknown_items`` (ids not in the user's library).
        """
        with self.lock:
            if session.done:
                raise PickerError(
                    "session_done",
                    "The user already tapped Done in this session; create a new session to pick "
                    "more.",
                )
            unique = list(dict.fromkeys(item_ids))
            if not unique:
                raise PickerError("nothing_picked", "Pick at least one photo before Done.")
            if len(unique) > session.max_items:
                raise PickerError(
                    "too_many_items",
                    f"This session allows at most {session.max_items} items "
                    f"({len(unique)} picked).",
                )
            library = {item.id for item in self.library(session.sub)}
            unknown = [i for i in unique if i not in library]
            if unknown:
                raise PickerError(
                    "unknown_items",
                    f"{len(unknown)} of the ids are not in this user's library.",
                )
            session.picked = unique
            session.done = True

    def picked_items(self, session: PickingSession) -> list[MediaItem]:
        with self.photos.lock:
            items = self.photos.library(session.sub).items
            return [items[i] for i in session.picked if i in items]

    # -- base URLs -------------------------------------------------------------------------

    def mint_base_url(self, sub: str, app: str, item: MediaItem) -> str:
        """A new unguessable key that opens ``item`` to ``app``'s tokens of ``sub`` for
        ``base_url_ttl`` seconds from now."""
        key = secrets.token_urlsafe(48)
        expires = self.clock.now() + timedelta(seconds=self.settings.base_url_ttl)
        with self.lock:
            self._drop_dead_base_urls()
            self._base_urls[key] = BaseUrlGrant(sub, app, item.id, expires)
        return key

    def open_base_url(self, key: str) -> tuple[BaseUrlGrant | None, bool]:
        """(the grant behind ``key`` or ``None`` if unknown, whether it still works)."""
        with self.lock:
            grant = self._base_urls.get(key)
        if grant is None:
            return None, False
        return grant, self.clock.now() < grant.expires

    def item(self, sub: str, item_id: str) -> MediaItem | None:
        with self.photos.lock:
            return self.photos.library(sub).items.get(item_id)

    def _drop_dead_base_urls(self) -> None:
        # Keep dead keys a day so a late fetch gets "expired" (403), not "unknown" (404).
        horizon = self.clock.now() - timedelta(days=1)
        dead = [k for k, g in self._base_urls.items() if g.expires < horizon]
        for key in dead:
            del self._base_urls[key]


def picker_store(state: EmulatorState) -> PickerStore:
    """The picking sessions of one emulator (dropped by its reset, with the libraries)."""
    return state.extension("photospicker", lambda: PickerStore(state.clock, photos_store(state)))
