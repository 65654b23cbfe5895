"""The offline photo job: the pure parts on their own, the job against the emulator's Photos
Library API through google-api-python-client (a token from the emulator's real code flow)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.errors import HttpError
from PIL import Image

from grantkeeper.demo.photo_job import (
    BATCH_LIMIT,
    PHOTOS_SCOPES,
    EnhancedPhoto,
    JobReport,
    PhotoJobError,
    PhotosLibrary,
    batches,
    enhance,
    enhance_inbox,
    pixel_change,
    save_pairs,
)
from grantkeeper.emulator import EmulatorHandle
from grantkeeper.emulator.photos.pictures import generate_photo

from ..helpers_google import backend_sign_in

DISCOVERY = "/discovery/v1/apis/photoslibrary/v1/rest"


# -- pure parts ------------------------------------------------------------------------------


def test_enhance_stretches_contrast_and_keeps_size_and_exif() -> None:
    original = generate_photo(7, 160, 120)
    better = enhance(original)
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(better)) as b:
        assert b.format == "JPEG"
        assert b.size == a.size
        assert b.getexif().get(0x010F) == "grantkeeper"  # Make survived
        low, high = a.convert("L").getextrema()
        new_low, new_high = b.convert("L").getextrema()
    # The seeded picture is flat on purpose; auto-contrast must widen its range a lot.
    assert float(new_high) - float(new_low) > float(high) - float(low) + 60
    assert pixel_change(original, better) > 20
    assert pixel_change(original, original) == 0


def test_enhance_refuses_what_is_not_a_picture() -> None:
    with pytest.raises(OSError, match="cannot identify image"):
        enhance(b"not a jpeg")


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(0, []), (1, [1]), (50, [50]), (51, [50, 1]), (120, [50, 50, 20])],
)
def test_batches_never_exceed_fifty(count: int, sizes: list[int]) -> None:
    items = list(range(count))
    chunks = list(batches(items))
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == items


def test_a_batch_size_above_googles_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 50"):
        list(batches([1, 2], BATCH_LIMIT + 1))
    with pytest.raises(ValueError, match="between 1 and 50"):
        list(batches([1, 2], 0))


def test_save_pairs_never_writes_outside_the_directory(tmp_path: Path) -> None:
    photo = EnhancedPhoto("../../escape.jpg", "id1", b"before", b"after", 1.0, "new", "Success")
    report = JobReport("Inbox", "Enhanced", "album", (photo,), 1, 0.1)
    [(before, after)] = save_pairs(report, tmp_path / "out")
    assert before == tmp_path / "out" / "before" / "escape.jpg"
    assert after == tmp_path / "out" / "after" / "escape-enhanced.jpg"
    assert before.read_bytes() == b"before"
    assert after.read_bytes() == b"after"


# -- against the emulator --------------------------------------------------------------------


@dataclass
class PhotoUser:
    emulator: EmulatorHandle
    sub: str
    client_id: str
    token: str

    @property
    def discovery_url(self) -> str:
        return self.emulator.base_url + DISCOVERY

    def credentials(self) -> Credentials:
        return Credentials(token=self.token)

    def seed(self, count: int, album: str = "Inbox") -> None:
        left = count
        while left:
            reply = httpx.post(
                f"{self.emulator.base_url}/emulator/users/{self.sub}/photos",
                json={
                    "client_id": self.client_id,
                    "album_title": album,
                    "count": min(left, 50),
                    "width": 48,
                    "height": 32,
                },
            )
            assert reply.status_code == 201, reply.text
            left -= min(left, 50)

    def calls(self, endpoint: str) -> int:
        return int(self.emulator.control.stats().get(endpoint, 0))


def photo_user(emulator: EmulatorHandle, scopes: tuple[str, ...] = PHOTOS_SCOPES) -> PhotoUser:
    """A user of an iOS photo app whose backend redeemed the server auth code."""
    emulator.control.create_user("grace@example.com")
    grant = backend_sign_in(emulator, scopes, email="grace@example.com")
    return PhotoUser(emulator, grant.sub, grant.ios_client_id, grant.token)


def test_the_job_enhances_every_picture_in_batches_of_fifty(emulator: EmulatorHandle) -> None:
    user = photo_user(emulator)
    user.seed(55)
    seen: list[tuple[str, int, int]] = []
    report = enhance_inbox(
        user.credentials(), user.discovery_url, progress=lambda *event: seen.append(event)
    )
    assert report.ok
    assert len(report.created) == 55
    assert report.batch_calls == 2
    assert user.calls("photos.mediaItems.batchCreate") == 2
    assert user.calls("photos.uploads") == 55
    assert ("upload", 55, 55) in seen
    assert seen[-1] == ("create", 55, 55)
    assert all(p.status == "Success" and p.change > 5 for p in report.photos)
    with PhotosLibrary(user.credentials(), user.discovery_url) as photos:
        enhanced = photos.album("Enhanced")
        assert enhanced is not None
        assert enhanced["id"] == report.target_album_id
        listed = photos.items(enhanced["id"])
        assert [i["id"] for i in listed] == [p.created_id for p in report.photos]
        assert listed[0]["filename"] == report.photos[0].filename.replace(".jpg", "-enhanced.jpg")
        assert pixel_change(photos.download(listed[0]), report.photos[0].after) < 1
        # The originals are still in Inbox, untouched.
        inbox = photos.album("Inbox")
        assert inbox is not None
        assert inbox["mediaItemsCount"] == "55"


def test_a_second_run_reuses_the_enhanced_album(emulator: EmulatorHandle) -> None:
    user = photo_user(emulator)
    user.seed(2)
    first = enhance_inbox(user.credentials(), user.discovery_url)
    second = enhance_inbox(user.credentials(), user.discovery_url, batch_size=1)
    assert second.target_album_id == first.target_album_id
    assert second.batch_calls == 2
    assert user.calls("photos.albums.create") == 1


def test_no_inbox_is_a_clear_error(emulator: EmulatorHandle) -> None:
    user = photo_user(emulator)
    user.seed(1, album="Holidays")
    with pytest.raises(PhotoJobError, match='no album "Inbox"'):
        enhance_inbox(user.credentials(), user.discovery_url)


def test_without_the_photos_scopes_google_refuses(emulator: EmulatorHandle) -> None:
    user = photo_user(emulator, scopes=("openid", "email"))
    with pytest.raises(HttpError) as refused:
        enhance_inbox(user.credentials(), user.discovery_url)
    assert refused.value.status_code == 403


def test_a_missing_discovery_document_is_named(emulator: EmulatorHandle) -> None:
    user = photo_user(emulator)
    url: Any = emulator.base_url + "/discovery/v1/apis/nope/v1/rest"
    with pytest.raises(PhotoJobError, match="discovery document"):
        enhance_inbox(user.credentials(), url)
