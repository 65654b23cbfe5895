"""The backend's half of the Google Photos Picker: start a session, wait for the user, fetch the
originals they picked while their base URLs work.

Since 31 March 2025 the Library API shows an app only what it created, so the photo app of
Google's guide lets the user *pick* the photos to enhance. The flow (Google's "Get started with
the Picker API"): ``sessions.create`` gives a ``pickerUri`` the app shows the user; the backend
polls ``sessions.get`` every ``pollingConfig.pollInterval`` until ``mediaItemsSet``; then
``mediaItems.list`` gives each picked item's ``baseUrl``. A base URL works for 60 minutes and
needs the user's OAuth token, so a job that runs later, while the user is away, cannot rely on it:
:func:`fetch_originals` downloads the originals (``=d``) right after the user taps Done, and the
offline job works from those copies.

Call it from synchronous code (a worker, a thread): google-api-python-client blocks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import requests
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession
from googleapiclient.discovery import build_from_document

#: The one scope of the Picker API.
PICKER_SCOPE = "https://www.googleapis.com/auth/photospicker.mediaitems.readonly"
#: How long a listed base URL works (Google's "List and retrieve media items" guide).
BASE_URL_LIFETIME = timedelta(minutes=60)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


class PickerError(Exception):
    """The user did not pick in time, or a Picker call failed; the message says which."""


@dataclass(frozen=True)
class Original:
    """A picked photo's original bytes, as the backend keeps them."""

    filename: str
    source_id: str
    """The Picker's media item id (stable across sessions)."""
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class Fetched:
    originals: tuple[Original, ...]
    listed_at: datetime
    """When the base URLs were listed: they stop working ``BASE_URL_LIFETIME`` later."""
    base_urls: tuple[str, ...] = field(repr=False)

    @property
    def base_urls_die_at(self) -> datetime:
        return self.listed_at + BASE_URL_LIFETIME


def seconds(duration: str | None, default: float) -> float:
    """Google's Duration JSON (``"5s"``, ``"2.5s"``) in seconds."""
    match = _DURATION.match(duration or "")
    return float(match.group(1)) if match else default


class PhotosPicker:
    """The Picker calls a backend makes, over one authorized session::

    with PhotosPicker(credentials, discovery_url) as picker:
        session = picker.create_session(max_items=10)
    """

    def __init__(self, credentials: Credentials, discovery_url: str) -> None:
        # The document is public: no reason to send the user's token with it.
        answer = requests.get(discovery_url, timeout=30)
        if answer.status_code != 200:
            raise PickerError(
                f"The Photos Picker discovery document at {discovery_url} answered "
                f"{answer.status_code}."
            )
        self.api = build_from_document(answer.json(), credentials=credentials)
        self.session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    def __enter__(self) -> PhotosPicker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()
        self.session.close()  # type: ignore[no-untyped-call]

    def create_session(self, max_items: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if max_items is not None:
            body["pickingConfig"] = {"maxItemCount": str(max_items)}
        created: dict[str, Any] = self.api.sessions().create(body=body).execute()
        return created

    def get_session(self, session_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.sessions().get(sessionId=session_id).execute()
        return found

    def delete_session(self, session_id: str) -> None:
        self.api.sessions().delete(sessionId=session_id).execute()

    def wait_until_picked(
        self,
        session_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll ``sessions.get`` as Google asks (every ``pollInterval``, until ``timeoutIn``)
        until the user taps Done.

        Raises:
            PickerError: ``timeoutIn`` ran out before the user was done.
        """
        waited = 0.0
        while True:
            session = self.get_session(session_id)
            if on_poll is not None:
                on_poll(session)
            if session.get("mediaItemsSet"):
                return session
            polling = session.get("pollingConfig") or {}
            interval = seconds(polling.get("pollInterval"), 5.0)
            left = seconds(polling.get("timeoutIn"), 0.0)
            if left <= 0 or waited >= left:
                raise PickerError(
                    "The user did not finish picking before the session timed out; start a new "
                    "session."
                )
            sleep(min(interval, left))
            waited += interval

    def picked_items(self, session_id: str) -> Iterator[dict[str, Any]]:
        """Every picked item, page by page (at most 100 a page)."""
        token: str | None = None
        while True:
            page = (
                self.api.mediaItems()
                .list(sessionId=session_id, pageSize=100, pageToken=token)
                .execute()
            )
            yield from page.get("mediaItems", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def download(self, item: dict[str, Any], options: str = "d") -> bytes:
        """The bytes behind a picked item's ``baseUrl`` (the user's token goes with it)."""
        media = item.get("mediaFile") or {}
        answer = self.session.get(f"{media['baseUrl']}={options}", timeout=60)
        if answer.status_code != 200:
            raise PickerError(
                f"Downloading {media.get('filename') or item.get('id')} answered "
                f"{answer.status_code}: the base URL may have expired (they last 60 minutes)."
            )
        return bytes(answer.content)


def fetch_originals(
    picker: PhotosPicker,
    session_id: str,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int, int], None] | None = None,
) -> Fetched:
    """List the picked items and download each original (``=d``) while the base URLs work."""
    listed_at = now()
    items = list(picker.picked_items(session_id))
    originals: list[Original] = []
    for done, item in enumerate(items, start=1):
        media = item.get("mediaFile") or {}
        name = str(media.get("filename") or f"{item['id']}.jpg")
        originals.append(Original(name, str(item["id"]), picker.download(item)))
        if progress is not None:
            progress(done, len(items))
    urls = tuple(str((i.get("mediaFile") or {}).get("baseUrl", "")) for i in items)
    return Fetched(tuple(originals), listed_at, urls)
