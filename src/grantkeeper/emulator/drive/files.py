"""Drive's data: each user's My Drive and per-app ``appDataFolder``, in memory, and the state of
resumable uploads in progress. Who may see what lives in :mod:`.drive_access`.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grantkeeper.clock import Clock
from grantkeeper.emulator.google_api import Caller
from grantkeeper.emulator.state import EmulatorState

FOLDER_MIME = "application/vnd.google-apps.folder"
APPDATA = "appDataFolder"
MY_DRIVE = "drive"
#: [U] Drive v2's alias for the app data folder; v3 is not confirmed to accept it. Accepted and
#: logged so that a client relying on it is noticed.
APPDATA_ALIASES = frozenset({"appDataFolder", "appfolder"})
#: [U] The folder's own name is not documented.
APPDATA_FOLDER_NAME = "Application Data"


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    space: str  # APPDATA or MY_DRIVE
    app: str  # the OAuth client that created it
    parents: list[str]
    created: datetime
    modified: datetime
    content: bytes | None = None
    description: str | None = None
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    version: int = 1

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER_MIME


@dataclass
class _UserDrive:
    root: DriveFile
    appdata: dict[str, DriveFile] = field(default_factory=dict)  # app -> its folder
    files: dict[str, DriveFile] = field(default_factory=dict)


@dataclass
class PendingUpload:
    caller: Caller  # who opened the session; the upload id is the credential from then on
    metadata: dict[str, Any]
    mime_type: str
    file_id: str | None  # set for an update
    total: int | None
    received: bytearray = field(default_factory=bytearray)


def new_file_id() -> str:
    """A Drive-looking file id: "1" and 32 URL-safe characters."""
    return "1" + secrets.token_urlsafe(24)


def _new_folder_id() -> str:
    # My Drive's root and the app data folder have short ids ending in base64("ROOT").
    return "0A" + secrets.token_urlsafe(9)[:11] + "Uk9PVA"


class DriveStore:
    """Every user's Drive files, in memory, guarded by one lock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._users: dict[str, _UserDrive] = {}
        self._uploads: dict[str, PendingUpload] = {}

    def clear(self) -> None:
        with self._lock:
            self._users.clear()
            self._uploads.clear()

    def _user(self, sub: str) -> _UserDrive:
        user = self._users.get(sub)
        if user is None:
            now = self._clock.now()
            root = DriveFile(_new_folder_id(), "My Drive", FOLDER_MIME, MY_DRIVE, "", [], now, now)
            user = self._users[sub] = _UserDrive(root)
        return user

    def appdata_folder(self, sub: str, app: str) -> DriveFile:
        """The app's folder; Google creates it on first use, so does the emulator."""
        with self._lock:
            user = self._user(sub)
            folder = user.appdata.get(app)
            if folder is None:
                now = self._clock.now()
                folder = DriveFile(
                    _new_folder_id(), APPDATA_FOLDER_NAME, FOLDER_MIME, APPDATA, app, [], now, now
                )
                user.appdata[app] = folder
            return folder

    def root_folder(self, sub: str) -> DriveFile:
        with self._lock:
            return self._user(sub).root

    def find(self, sub: str, file_id: str) -> DriveFile | None:
        """A file or one of the special folders by id (aliases are resolved by the caller)."""
        with self._lock:
            user = self._user(sub)
            if file_id == user.root.id:
                return user.root
            for folder in user.appdata.values():
                if folder.id == file_id:
                    return folder
            return user.files.get(file_id)

    def files(self, sub: str) -> list[DriveFile]:
        with self._lock:
            return sorted(self._user(sub).files.values(), key=lambda f: (f.created, f.id))

    def put(self, sub: str, file: DriveFile) -> DriveFile:
        with self._lock:
            self._user(sub).files[file.id] = file
            return file

    def delete(self, sub: str, file_id: str) -> None:
        """Delete a file and, for a folder, everything under it."""
        with self._lock:
            files = self._user(sub).files
            doomed = {file_id}
            grew = True
            while grew:
                more = {f.id for f in files.values() if doomed & set(f.parents)} - doomed
                grew = bool(more)
                doomed |= more
            for gone in doomed:
                files.pop(gone, None)

    def start_upload(self, pending: PendingUpload) -> str:
        upload_id = secrets.token_urlsafe(32)
        with self._lock:
            self._uploads[upload_id] = pending
        return upload_id

    def upload(self, upload_id: str) -> PendingUpload | None:
        with self._lock:
            return self._uploads.get(upload_id)

    def finish_upload(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)


def drive_store(state: EmulatorState) -> DriveStore:
    """The Drive files of one emulator (dropped by its reset)."""
    return state.extension("drive", lambda: DriveStore(state.clock))
