"""Who reaches which Drive file: the scopes of each space and the errors Google answers.

See google-protocol.md §7: the ``appDataFolder`` space needs ``drive.appdata`` (even the full
``drive`` scope does not reach it) and each app sees only its own folder; My Drive needs ``drive``
(all of the user's files) or ``drive.file`` (the files this app created).
"""

from __future__ import annotations

from grantkeeper.emulator.drive.files import APPDATA, MY_DRIVE, DriveFile
from grantkeeper.emulator.errors import GoogleApiError, legacy_error

_AUTH = "https://www.googleapis.com/auth/"
DRIVE = _AUTH + "drive"
DRIVE_APPDATA = _AUTH + "drive.appdata"
DRIVE_FILE = _AUTH + "drive.file"
DRIVE_READONLY = _AUTH + "drive.readonly"
DRIVE_METADATA = _AUTH + "drive.metadata"
DRIVE_METADATA_READONLY = _AUTH + "drive.metadata.readonly"

#: Scopes that show every file of the user's My Drive (drive.file shows only the app's own).
MY_DRIVE_ALL = frozenset({DRIVE, DRIVE_READONLY, DRIVE_METADATA, DRIVE_METADATA_READONLY})
MY_DRIVE_WRITE = frozenset({DRIVE, DRIVE_FILE})


def space_granted(space: str, scopes: frozenset[str]) -> bool:
    """Whether a token's scopes reach a Drive space at all."""
    if space == APPDATA:
        return DRIVE_APPDATA in scopes
    if space == MY_DRIVE:
        return bool(scopes & (MY_DRIVE_ALL | {DRIVE_FILE}))
    return False


def visible(file: DriveFile, app: str, scopes: frozenset[str]) -> bool:
    """Whether the app ``app`` holding ``scopes`` may see ``file``."""
    if file.space == APPDATA:
        return file.app == app and DRIVE_APPDATA in scopes
    if scopes & MY_DRIVE_ALL:
        return True
    return DRIVE_FILE in scopes and (file.app == app or not file.app)


def spaces_error() -> GoogleApiError:
    return legacy_error(
        403,
        "The granted scopes do not give access to all of the requested spaces.",
        "insufficientScopes",
    )


def not_found(file_id: str) -> GoogleApiError:
    return legacy_error(404, f"File not found: {file_id}.", "notFound", location="fileId")


def no_permission() -> GoogleApiError:
    return legacy_error(
        403,
        "The user does not have sufficient permissions for this file.",
        "insufficientFilePermissions",
    )


def not_for_app_data(what: str) -> GoogleApiError:
    """403 ``notSupportedForAppDataFolderFiles``: Google refuses to trash, move out of the
    space, or share a file of the ``appDataFolder`` (Drive's appdata guide, "constraints")."""
    message = "Method not supported for files within the Application Data folder."
    del what  # the same message for every refused method, as Google answers
    return legacy_error(403, message, "notSupportedForAppDataFolderFiles")
