"""The offline job of Google's guide: enhance the user's photos and upload the results to
another album, "Enhanced", with the Photos Library API.

Since 31 March 2025 the Library API lets an app read only what the app itself uploaded, so the
user's own photos reach the job through the Photos Picker (:mod:`grantkeeper.demo.picker`): the
backend fetches the originals the user picked while their base URLs work (60 minutes), and later,
with the user away, :func:`enhance_and_upload` enhances them with Pillow (auto-contrast, then
sharpen), uploads the bytes (``POST /v1/uploads``, raw, answered with an upload token) and adds
the results to "Enhanced" with ``mediaItems.batchCreate`` (at most 50 per call).
:func:`enhance_inbox` does the same for pictures of an album the app created itself.

The credentials are any google-auth ``Credentials``; with ``Keeper.credentials(sub)`` every
refresh goes through the keeper, so the job runs while the user is away. It needs
``photoslibrary.appendonly`` to upload and create the album and
``photoslibrary.readonly.appcreateddata`` to find it again. The client is built from the
discovery document at ``discovery_url`` (google-api-python-client bundles none for Photos
Library), and uploads go to that document's ``rootUrl``, so the same code reaches Google or the
emulator.

Call it from synchronous code (a worker, a thread): google-api-python-client blocks.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession
from googleapiclient.discovery import build_from_document
from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

from grantkeeper.demo.picker import Original

INBOX = "Inbox"
ENHANCED = "Enhanced"
#: How a report names pictures the user picked with the Photos Picker.
PICKED = "picked with the Google Photos Picker"
#: ``mediaItems.batchCreate`` takes at most this many new items per call.
BATCH_LIMIT = 50
#: The scopes the job needs under Google's 2025 Photos rules.
PHOTOS_SCOPES = (
    "https://www.googleapis.com/auth/photoslibrary.appendonly",
    "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata",
)

#: ``progress(stage, done, total)``; stages: ``download``, ``enhance``, ``upload``, ``create``.
Progress = Callable[[str, int, int], None]
T = TypeVar("T")


class PhotoJobError(Exception):
    """The job could not run (no album, an API refused a call); the message says which."""


@dataclass(frozen=True)
class EnhancedPhoto:
    """One picture: the bytes before and after, and what became of the upload."""

    filename: str
    source_id: str
    before: bytes = field(repr=False)
    after: bytes = field(repr=False)
    change: float
    """Mean absolute per-channel pixel difference (0-255) between before and after."""
    created_id: str | None = None
    status: str = "pending"


@dataclass(frozen=True)
class JobReport:
    source_album: str
    target_album: str
    target_album_id: str
    photos: tuple[EnhancedPhoto, ...]
    batch_calls: int
    seconds: float

    @property
    def created(self) -> tuple[EnhancedPhoto, ...]:
        return tuple(p for p in self.photos if p.created_id is not None)

    @property
    def failed(self) -> tuple[EnhancedPhoto, ...]:
        return tuple(p for p in self.photos if p.created_id is None)

    @property
    def ok(self) -> bool:
        return bool(self.photos) and not self.failed


# -- pure parts ------------------------------------------------------------------------------


def enhance(jpeg: bytes, *, quality: int = 90) -> bytes:
    """Auto-contrast (ignoring the extreme 1 %) and sharpen; JPEG in, JPEG out, EXIF kept."""
    with Image.open(io.BytesIO(jpeg)) as original:
        exif = original.info.get("exif")
        picture = ImageOps.exif_transpose(original).convert("RGB")
    better = ImageOps.autocontrast(picture, cutoff=1)
    better = better.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=2))
    out = io.BytesIO()
    better.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def pixel_change(before: bytes, after: bytes) -> float:
    """Mean absolute difference per channel (0-255) between two pictures of the same size."""
    with Image.open(io.BytesIO(before)) as a, Image.open(io.BytesIO(after)) as b:
        first, second = a.convert("RGB"), b.convert("RGB")
    if first.size != second.size:
        second = second.resize(first.size)
    stat = ImageStat.Stat(ImageChops.difference(first, second))
    return float(sum(stat.mean) / len(stat.mean))


def batches(items: Sequence[T], size: int = BATCH_LIMIT) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items (``batchCreate`` takes at most 50)."""
    if not 1 <= size <= BATCH_LIMIT:
        raise ValueError(f"batch size must be between 1 and {BATCH_LIMIT}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enhanced_name(filename: str) -> str:
    stem, dot, suffix = filename.rpartition(".")
    return f"{stem}-enhanced.{suffix}" if dot else f"{filename}-enhanced.jpg"


def save_pairs(report: JobReport, directory: Path) -> list[tuple[Path, Path]]:
    """Write each picture's before and after into ``directory/before`` and ``/after``."""
    written: list[tuple[Path, Path]] = []
    for sub in ("before", "after"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for photo in report.photos:
        name = Path(photo.filename).name  # never a path from the API
        before, after = directory / "before" / name, directory / "after" / enhanced_name(name)
        before.write_bytes(photo.before)
        after.write_bytes(photo.after)
        written.append((before, after))
    return written


# -- the job ---------------------------------------------------------------------------------


def _pages(call: Callable[[str | None], dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(token)
        yield from page.get(key, [])
        token = page.get("nextPageToken")
        if not token:
            return


def _noop(stage: str, done: int, total: int) -> None:
    return None


class PhotosLibrary:
    """The few Photos Library calls the job makes, over one authorized session::

    with PhotosLibrary(credentials, discovery_url) as photos:
        album = photos.album("Enhanced")
    """

    def __init__(self, credentials: Credentials, discovery_url: str) -> None:
        self.session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        # The document is public: no reason to send the user's token with it.
        answer = requests.get(discovery_url, timeout=30)
        if answer.status_code != 200:
            raise PhotoJobError(
                f"The Photos Library discovery document at {discovery_url} answered "
                f"{answer.status_code}."
            )
        document = answer.json()
        self.uploads_url = document["rootUrl"].rstrip("/") + "/v1/uploads"
        self.api = build_from_document(document, credentials=credentials)

    def __enter__(self) -> PhotosLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()
        self.session.close()  # type: ignore[no-untyped-call]

    def album(self, title: str) -> dict[str, Any] | None:
        albums = self.api.albums()

        def page(token: str | None) -> dict[str, Any]:
            found: dict[str, Any] = albums.list(pageSize=50, pageToken=token).execute()
            return found

        return next((a for a in _pages(page, "albums") if a.get("title") == title), None)

    def items(self, album_id: str) -> list[dict[str, Any]]:
        media = self.api.mediaItems()

        def page(token: str | None) -> dict[str, Any]:
            body = {"albumId": album_id, "pageSize": 100, "pageToken": token}
            found: dict[str, Any] = media.search(body=body).execute()
            return found

        return list(_pages(page, "mediaItems"))

    def create_album(self, title: str) -> dict[str, Any]:
        created: dict[str, Any] = (
            self.api.albums().create(body={"album": {"title": title}}).execute()
        )
        return created

    def download(self, item: dict[str, Any]) -> bytes:
        answer = self.session.get(item["baseUrl"] + "=d", timeout=60)
        if answer.status_code != 200:
            raise PhotoJobError(
                f"Downloading {item.get('filename')} answered {answer.status_code}."
            )
        return bytes(answer.content)

    def upload(self, content: bytes, filename: str) -> str:
        answer = self.session.post(
            self.uploads_url,
            data=content,
            headers={
                "Content-Type": "application/octet-stream",
                "X-Goog-Upload-Content-Type": "image/jpeg",
                "X-Goog-Upload-File-Name": filename,
                "X-Goog-Upload-Protocol": "raw",
            },
            timeout=60,
        )
        if answer.status_code != 200:
            raise PhotoJobError(f"Uploading {filename} answered {answer.status_code}.")
        return answer.text

    def batch_create(self, album_id: str, entries: Sequence[dict[str, Any]]) -> list[Any]:
        body = {"albumId": album_id, "newMediaItems": list(entries)}
        answer = self.api.mediaItems().batchCreate(body=body).execute()
        results: list[Any] = answer.get("newMediaItemResults", [])
        return results


def enhance_and_upload(
    credentials: Credentials,
    discovery_url: str,
    originals: Sequence[Original],
    *,
    source: str = PICKED,
    target: str = ENHANCED,
    progress: Progress | None = None,
    batch_size: int = BATCH_LIMIT,
) -> JobReport:
    """Enhance each original and add the results to the app's album ``target`` (made if
    missing) through the Library API: ``POST /v1/uploads`` for the bytes, then
    ``mediaItems.batchCreate`` (at most 50 per call).

    ``originals`` are bytes the backend already holds: pictures the user picked with the
    Photos Picker (fetched while their base URLs worked, see :mod:`grantkeeper.demo.picker`) or
    pictures of an app-created album (:func:`enhance_inbox`). ``source`` only names them in
    the report.

    Raises:
        PhotoJobError: an upload failed.
        google.auth.exceptions.RefreshError: no token could be had (e.g. the grant was revoked).
        googleapiclient.errors.HttpError: a Photos call failed (scopes, quota).
    """
    report = progress or _noop
    started = time.monotonic()
    total = len(originals)
    with PhotosLibrary(credentials, discovery_url) as photos:
        album = photos.album(target) or photos.create_album(target)
        pending: list[tuple[EnhancedPhoto, str]] = []
        for done, original in enumerate(originals, start=1):
            better = enhance(original.content)
            report("enhance", done, total)
            token = photos.upload(better, enhanced_name(original.filename))
            report("upload", done, total)
            photo = EnhancedPhoto(
                filename=original.filename,
                source_id=original.source_id,
                before=original.content,
                after=better,
                change=pixel_change(original.content, better),
            )
            pending.append((photo, token))
        finished: list[EnhancedPhoto] = []
        calls = 0
        for chunk in batches(pending, batch_size):
            entries = [
                {
                    "description": f"{photo.filename}, enhanced by grantkeeper",
                    "simpleMediaItem": {
                        "uploadToken": token,
                        "fileName": enhanced_name(photo.filename),
                    },
                }
                for photo, token in chunk
            ]
            results = photos.batch_create(album["id"], entries)
            calls += 1
            for (photo, _), result in zip(chunk, results, strict=True):
                created = result.get("mediaItem", {}).get("id")
                message = result.get("status", {}).get("message", "no status")
                finished.append(replace(photo, created_id=created, status=message))
            report("create", len(finished), total)
        return JobReport(
            source_album=source,
            target_album=target,
            target_album_id=album["id"],
            photos=tuple(finished),
            batch_calls=calls,
            seconds=time.monotonic() - started,
        )


def enhance_inbox(
    credentials: Credentials,
    discovery_url: str,
    *,
    source: str = INBOX,
    target: str = ENHANCED,
    progress: Progress | None = None,
    batch_size: int = BATCH_LIMIT,
) -> JobReport:
    """Enhance every picture of the app's own album ``source`` into album ``target``.

    Under Google's 2025 rules this works only on pictures the app uploaded itself; for the
    user's own photos, let them pick with the Photos Picker and use :func:`enhance_and_upload`.
    ``discovery_url`` is the Photos Library v1 discovery document (Google's:
    ``https://photoslibrary.googleapis.com/$discovery/rest?version=v1``; the emulator's:
    ``<emulator>/discovery/v1/apis/photoslibrary/v1/rest``).

    Raises:
        PhotoJobError: the album is missing or an API answered with an error.
        google.auth.exceptions.RefreshError: no token could be had (e.g. the grant was revoked).
        googleapiclient.errors.HttpError: a Photos call failed (scopes, quota).
    """
    report = progress or _noop
    with PhotosLibrary(credentials, discovery_url) as photos:
        inbox = photos.album(source)
        if inbox is None:
            raise PhotoJobError(f'The user\'s Google Photos has no album "{source}" of this app.')
        items = photos.items(inbox["id"])
        originals: list[Original] = []
        for done, item in enumerate(items, start=1):
            name = str(item.get("filename") or item["id"])
            originals.append(Original(name, item["id"], photos.download(item)))
            report("download", done, len(items))
    return enhance_and_upload(
        credentials,
        discovery_url,
        originals,
        source=source,
        target=target,
        progress=progress,
        batch_size=batch_size,
    )
