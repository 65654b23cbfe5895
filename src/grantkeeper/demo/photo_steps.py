"""The photo half of the demo: the user's own library, the Picker scope asked for incrementally,
the user picking with the Google Photos Picker, and the offline job that enhances the picks into
an app-created album "Enhanced" through the Library API.

Honest about base URLs: a picked item's ``baseUrl`` works for 60 minutes after listing and only
with the user's token, so the backend fetches the originals as soon as the user taps Done and
keeps them; the job, hours later, works from those copies. The story shows the URLs dead by then.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grantkeeper.demo.narration import check
from grantkeeper.demo.photo_job import (
    ENHANCED,
    PHOTOS_SCOPES,
    PhotosLibrary,
    enhance_and_upload,
    pixel_change,
    save_pairs,
)
from grantkeeper.demo.picker import PICKER_SCOPE, Fetched, Original, PhotosPicker, fetch_originals

if TYPE_CHECKING:
    from grantkeeper.demo.story import DemoStory

#: What the app asks for when the user first wants photos enhanced (incremental authorization).
PHOTO_SCOPES = (PICKER_SCOPE, *PHOTOS_SCOPES)
LIBRARY_SIZE = 6
PICKED = 4


class PhotoSteps:
    """The photo steps of one :class:`~grantkeeper.demo.story.DemoStory`."""

    def __init__(self, story: DemoStory) -> None:
        self.story = story
        self.fetched: Fetched | None = None

    def say(self, text: str) -> None:
        self.story.say(text)

    def _columns(self) -> tuple[Any, ...]:
        return (
            TextColumn("   {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )

    # -- steps -----------------------------------------------------------------------------

    def fill_library(self, sub: str) -> str:
        """The user's Google Photos holds their own pictures: no app created them."""
        reply = self.story.emulator.control.http.post(
            f"/emulator/users/{sub}/library", json={"count": LIBRARY_SIZE}
        )
        reply.raise_for_status()
        body = reply.json()
        self.library = [item["id"] for item in body["mediaItems"]]
        names = ", ".join(item["filename"] for item in body["mediaItems"])
        self.say(f"library  {body['librarySize']} photos the user took: {names}")
        check(body["librarySize"] == LIBRARY_SIZE, "the library does not hold the photos")
        return f"a Google account whose library holds {LIBRARY_SIZE} photos no app created"

    def ask_for_photos(self) -> str:
        story = self.story
        before = set(story.grant().scopes)
        # The user taps "Enhance my photos": GIDSignIn's addScopes asks for the new scopes only.
        code = story.emulator.control.server_auth_code(
            story.world.ios_client_id, story.world.web_client_id, story.email, PHOTO_SCOPES
        )
        story.secrets_seen.add(code)
        result = story.post_code(code)
        grant = result["grant"]
        added = sorted(set(grant["scopes"]) - before)
        self.say("asked for:")
        for scope in PHOTO_SCOPES:
            self.say(f"  {scope}")
        self.say(f"the grant gained {len(added)} scopes and kept its {len(before)} earlier ones")
        check(set(PHOTO_SCOPES) <= set(grant["scopes"]), "a Photos scope was not granted")
        check(before <= set(grant["scopes"]), "incremental authorization lost earlier scopes")
        with PhotosLibrary(
            story.worker.credentials(story.sub, PHOTOS_SCOPES),
            story.discovery("photoslibrary", "v1"),
        ) as photos:
            visible = photos.api.mediaItems().list(pageSize=100).execute().get("mediaItems", [])
        self.say(f"the Library API shows the app {len(visible)} of the user's photos (2025 rules)")
        check(not visible, "the Library API shows the app photos it did not create")
        return "the Picker and Library scopes joined the grant; the user's photos stay private"

    def pick_photos(self) -> str:
        story = self.story
        credentials = story.worker.credentials(story.sub, [PICKER_SCOPE])
        with PhotosPicker(credentials, story.discovery("photospicker", "v1")) as picker:
            session = picker.create_session(max_items=10)
            self.say(f"sessions.create -> pickerUri {session['pickerUri']}")
            self.say(f"the app opens {session['pickerUri']}/autoclose for the user")
            # What the user does on the picker page (POST /emulator/.../pick does it for them).
            chosen = self.library[:PICKED]
            story.emulator.control.pick(session["id"], media_item_ids=chosen)
            self.say(
                f"the user picks {PICKED} of their photos on that page and taps Done "
                "(here the emulator's control API does it for them)"
            )
            polls: list[dict[str, Any]] = []
            picker.wait_until_picked(session["id"], on_poll=polls.append)
            self.say(f"sessions.get -> mediaItemsSet true after {len(polls)} poll(s)")
            with Progress(*self._columns(), console=story.narrator.console) as bar:
                task = bar.add_task("fetching", total=None)
                self.fetched = fetch_originals(
                    picker,
                    session["id"],
                    now=story.emulator.state.clock.now,
                    progress=lambda done, total: bar.update(task, total=total, completed=done),
                )
            picker.delete_session(session["id"])
        originals = self.fetched.originals
        kept = self._keep(originals, story.data_dir / "photos" / "originals")
        dies = self.fetched.base_urls_die_at
        self.say(
            f"base URLs listed at {self.fetched.listed_at:%H:%M:%S}; they die at {dies:%H:%M:%S}"
        )
        self.say(f"so the backend fetched the {len(originals)} originals now (=d) into {kept}")
        self.say("and deleted the session, as Google recommends")
        check([o.source_id for o in originals] == chosen, "the picked items are not the user's")
        check(all(o.content[:2] == b"\xff\xd8" for o in originals), "an original is not a JPEG")
        return f"{PICKED} photos the user picked, fetched within their base URLs' hour"

    def base_urls_die_at(self) -> datetime:
        assert self.fetched is not None, "the user has not picked photos yet"
        return self.fetched.base_urls_die_at

    def offline_job(self) -> str:
        story = self.story
        assert self.fetched is not None
        before = story.refreshes()
        originals = self._load(story.data_dir / "photos" / "originals", self.fetched.originals)
        credentials = story.worker.credentials(story.sub, PHOTOS_SCOPES)
        self.say(f"the keeper refreshed the token; valid until {credentials.expiry:%H:%M:%S} UTC")
        # Even a fresh token cannot open a base URL after its hour: hence the kept originals.
        refused = httpx.get(
            self.fetched.base_urls[0] + "=d",
            headers={"Authorization": f"Bearer {credentials.token}"},
        )
        self.say(f"a picked photo's base URL now answers HTTP {refused.status_code}: expired")
        check(refused.status_code == 403, "a base URL still works after its 60 minutes")
        self.say(f"so the job works from the {len(originals)} originals the backend kept")
        discovery = story.discovery("photoslibrary", "v1")
        with Progress(*self._columns(), console=story.narrator.console) as bar:
            task = bar.add_task("enhancing", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, total=total, completed=done, description=f"{stage:<9}")

            report = enhance_and_upload(credentials, discovery, originals, progress=progress)
        story.secrets_seen.add(str(credentials.token))
        out = story.data_dir / "photos"
        pairs = save_pairs(report, out)
        for photo, (_, now) in zip(report.photos, pairs, strict=True):
            self.say(f"{photo.filename}: changed {photo.change:.0f}/255 on average -> {now.name}")
        self.say(f"before/after pictures: {out}/before and {out}/after")
        refreshes = story.refreshes() - before
        grant = story.grant()
        with PhotosLibrary(credentials, discovery) as photos:
            enhanced = photos.album(ENHANCED)
            listed = photos.items(enhanced["id"]) if enhanced else []
            first = photos.download(listed[0]) if listed else b""
        check(report.ok, f"{len(report.failed)} picture(s) were not created: {report.failed}")
        check(len(report.created) == PICKED, f"{len(report.created)} of {PICKED} enhanced")
        check(all(p.change > 5 for p in report.photos), "an enhanced picture barely changed")
        check(
            [i["id"] for i in listed] == [p.created_id for p in report.created],
            f'"{ENHANCED}" does not hold exactly the new pictures',
        )
        check(pixel_change(first, report.photos[0].after) < 1, "a stored picture differs")
        check(refreshes == 1, f"the job cost {refreshes} refreshes, not exactly one")
        check(
            grant.access_token == credentials.token
            and grant.last_refreshed_at is not None
            and grant.access_token_expires_at is not None
            and grant.access_token_expires_at > story.emulator.state.clock.now(),
            "the refreshed token was not persisted in the store",
        )
        self.say(f"one refresh at Google, persisted in the store; {report.batch_calls} batchCreate")
        return f'{PICKED} picked photos enhanced into the app\'s album "{ENHANCED}" while away'

    # -- the backend's own copies ----------------------------------------------------------

    @staticmethod
    def _keep(originals: tuple[Original, ...], directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for original in originals:
            (directory / Path(original.filename).name).write_bytes(original.content)
        return directory

    @staticmethod
    def _load(directory: Path, originals: tuple[Original, ...]) -> list[Original]:
        return [
            Original(o.filename, o.source_id, (directory / Path(o.filename).name).read_bytes())
            for o in originals
        ]
