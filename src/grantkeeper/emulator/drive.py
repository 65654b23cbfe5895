"""Drive API v3, enough for the seed: the hidden ``appDataFolder`` of each (user, app).

Paths are Google's: ``/drive/v3/files…`` for metadata and downloads, ``/upload/drive/v3/files…``
for uploads (``uploadType=multipart`` as google-api-python-client builds it, ``media``, and
``resumable`` in one or more PUTs). Access follows Google's rules (google-protocol.md §7): the
``appDataFolder`` space needs ``drive.appdata`` — even the full ``drive`` scope does not reach it
— and each app sees only its own folder; the ``drive`` space (My Drive) needs ``drive`` (all of
the user's files) or ``drive.file`` (the files this app created). A space the token does not reach
answers 403 "The granted scopes do not give access to all of the requested spaces.".
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import APIRouter, Request, Response

from grantkeeper.clock import Clock
from grantkeeper.emulator import discovery_docs
from grantkeeper.emulator.google_api import (
    ApiMethod,
    Caller,
    FieldMask,
    FieldSelectionError,
    GoogleApiError,
    GoogleApiRoute,
    apply_fields,
    authorize,
    base_url,
    legacy_error,
    parse_fields,
)
from grantkeeper.emulator.state import EmulatorState

log = logging.getLogger(__name__)

SERVICE = "drive.googleapis.com"
_AUTH = "https://www.googleapis.com/auth/"
DRIVE = _AUTH + "drive"
DRIVE_APPDATA = _AUTH + "drive.appdata"
DRIVE_FILE = _AUTH + "drive.file"
DRIVE_READONLY = _AUTH + "drive.readonly"
DRIVE_METADATA = _AUTH + "drive.metadata"
DRIVE_METADATA_READONLY = _AUTH + "drive.metadata.readonly"

FOLDER_MIME = "application/vnd.google-apps.folder"
APPDATA = "appDataFolder"
MY_DRIVE = "drive"
#: [U] Drive v2's alias for the app data folder; v3 is not confirmed to accept it. Accepted and
#: logged so that a client relying on it is noticed.
APPDATA_ALIASES = frozenset({"appDataFolder", "appfolder"})
#: [U] The folder's own name is not documented.
APPDATA_FOLDER_NAME = "Application Data"

_READ_SCOPES = frozenset(
    {
        DRIVE,
        DRIVE_APPDATA,
        DRIVE_FILE,
        DRIVE_READONLY,
        DRIVE_METADATA,
        DRIVE_METADATA_READONLY,
        _AUTH + "drive.meet.readonly",
        _AUTH + "drive.photos.readonly",
    }
)
_WRITE_SCOPES = frozenset({DRIVE, DRIVE_APPDATA, DRIVE_FILE})
_UPDATE_SCOPES = _WRITE_SCOPES | {DRIVE_METADATA, _AUTH + "drive.scripts"}
#: Scopes that show every file of the user's My Drive (drive.file shows only the app's own).
_MY_DRIVE_ALL = frozenset({DRIVE, DRIVE_READONLY, DRIVE_METADATA, DRIVE_METADATA_READONLY})
_MY_DRIVE_WRITE = frozenset({DRIVE, DRIVE_FILE})


def _method(name: str, rpc: str, scopes: frozenset[str]) -> ApiMethod:
    return ApiMethod(
        SERVICE, f"google.apps.drive.v3.DriveFiles.{rpc}", f"drive.files.{name}", scopes
    )


GET = _method("get", "Get", _READ_SCOPES)
LIST = _method("list", "List", _READ_SCOPES)
CREATE = _method("create", "Create", _WRITE_SCOPES)
UPDATE = _method("update", "Update", _UPDATE_SCOPES)
DELETE = _method("delete", "Delete", _WRITE_SCOPES)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Multipart uploads are for files of 5 MB or less (Google's guide); bigger ones go resumable.
MULTIPART_LIMIT = 5 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


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
class _PendingUpload:
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
        self._uploads: dict[str, _PendingUpload] = {}

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

    def start_upload(self, pending: _PendingUpload) -> str:
        upload_id = secrets.token_urlsafe(32)
        with self._lock:
            self._uploads[upload_id] = pending
        return upload_id

    def upload(self, upload_id: str) -> _PendingUpload | None:
        with self._lock:
            return self._uploads.get(upload_id)

    def finish_upload(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)


def drive_store(state: EmulatorState) -> DriveStore:
    """The Drive files of one emulator (dropped by its reset)."""
    return state.extension("drive", lambda: DriveStore(state.clock))


# --------------------------------------------------------------------------------------------
# Pure rules: visibility, resources, queries
# --------------------------------------------------------------------------------------------


def space_granted(space: str, scopes: frozenset[str]) -> bool:
    """Whether a token's scopes reach a Drive space at all."""
    if space == APPDATA:
        return DRIVE_APPDATA in scopes
    if space == MY_DRIVE:
        return bool(scopes & (_MY_DRIVE_ALL | {DRIVE_FILE}))
    return False


def visible(file: DriveFile, app: str, scopes: frozenset[str]) -> bool:
    """Whether the app ``app`` holding ``scopes`` may see ``file``."""
    if file.space == APPDATA:
        return file.app == app and DRIVE_APPDATA in scopes
    if scopes & _MY_DRIVE_ALL:
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


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def file_resource(file: DriveFile) -> dict[str, Any]:
    """The full ``drive#file`` resource; ``fields=`` selects from it."""
    resource: dict[str, Any] = {
        "kind": "drive#file",
        "id": file.id,
        "name": file.name,
        "mimeType": file.mime_type,
        "parents": list(file.parents),
        "spaces": [file.space],
        "starred": False,
        "trashed": False,
        "explicitlyTrashed": False,
        "version": str(file.version),
        "createdTime": _rfc3339(file.created),
        "modifiedTime": _rfc3339(file.modified),
        "ownedByMe": True,
        "shared": False,
        "viewedByMe": True,
        "capabilities": {
            "canDownload": not file.is_folder,
            "canEdit": True,
            "canDelete": True,
            "canShare": file.space != APPDATA,
            "canTrash": file.space != APPDATA,
        },
    }
    if not file.parents:
        del resource["parents"]
    if file.description is not None:
        resource["description"] = file.description
    if file.app_properties:
        resource["appProperties"] = dict(file.app_properties)
    if file.properties:
        resource["properties"] = dict(file.properties)
    if file.content is not None:
        resource["size"] = str(len(file.content))
        resource["quotaBytesUsed"] = str(len(file.content))
        resource["md5Checksum"] = hashlib.md5(file.content, usedforsecurity=False).hexdigest()
        resource["sha1Checksum"] = hashlib.sha1(file.content, usedforsecurity=False).hexdigest()
        resource["sha256Checksum"] = hashlib.sha256(file.content).hexdigest()
        resource["headRevisionId"] = f"0B{file.id[1:12]}{file.version:04d}"
        resource["originalFilename"] = file.name
        if "." in file.name:
            resource["fileExtension"] = file.name.rsplit(".", 1)[1]
            resource["fullFileExtension"] = file.name.split(".", 1)[1]
    return resource


#: Drive v3 answers only these members unless ``fields=`` asks for others.
DEFAULT_FILE_FIELDS: FieldMask = {"kind": None, "id": None, "name": None, "mimeType": None}
DEFAULT_LIST_FIELDS: FieldMask = {
    "kind": None,
    "incompleteSearch": None,
    "nextPageToken": None,
    "files": DEFAULT_FILE_FIELDS,
}


@cache
def _drive_discovery() -> dict[str, Any]:
    return discovery_docs.load_document("drive", "v3")


def _known_fields(schema: str) -> frozenset[str]:
    properties = _drive_discovery()["schemas"][schema]["properties"]
    return frozenset(properties)


def field_mask(spec: str | None, *, listing: bool) -> FieldMask:
    """The selection for a response, validated against Drive's schema as Google does."""
    if spec is None:
        return DEFAULT_LIST_FIELDS if listing else DEFAULT_FILE_FIELDS
    try:
        mask = parse_fields(spec)
    except FieldSelectionError:
        raise _invalid_fields(spec) from None
    file_mask: FieldMask | None = mask
    if listing:
        for name in mask:
            if name != "*" and name not in _known_fields("FileList"):
                raise _invalid_fields(name)
        file_mask = mask.get("files")
    for name in file_mask or {}:
        if name != "*" and name not in _known_fields("File"):
            raise _invalid_fields(name)
    return mask


def _invalid_fields(name: str) -> GoogleApiError:
    return legacy_error(
        400, f"Invalid field selection {name}", "invalidParameter", location="fields"
    )


_Q_CLAUSE = re.compile(
    r"""\s*(?:
        '(?P<parent>(?:[^'\\]|\\.)*)'\s+in\s+parents
      | (?P<field>name|mimeType|fullText)\s*(?P<op>=|!=|contains)\s*'(?P<value>(?:[^'\\]|\\.)*)'
      | trashed\s*(?P<top>=|!=)\s*(?P<tval>true|false)
      | (?P<key>appProperties|properties)\s+has\s+\{\s*key\s*=\s*'(?P<pk>(?:[^'\\]|\\.)*)'
            \s+and\s+value\s*=\s*'(?P<pv>(?:[^'\\]|\\.)*)'\s*\}
    )\s*""",
    re.VERBOSE,
)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(q: str) -> list[dict[str, str]]:
    """The clauses of a ``q`` made of ``and``-joined terms the emulator understands.

    Supported: ``'<id>' in parents``, ``name|mimeType = != contains '<text>'``,
    ``trashed = true|false``, ``appProperties|properties has { key='k' and value='v' }``.
    """
    clauses: list[dict[str, str]] = []
    for part in re.split(r"\s+and\s+(?![^{]*\})", q.strip()):
        match = _Q_CLAUSE.fullmatch(part)
        if match is None:
            raise legacy_error(400, "Invalid Value", "invalid", location="q")
        clauses.append({k: _unescape(v) for k, v in match.groupdict().items() if v is not None})
    return clauses


def matches(file: DriveFile, clauses: list[dict[str, str]], aliases: dict[str, str]) -> bool:
    for clause in clauses:
        if "parent" in clause:
            if aliases.get(clause["parent"], clause["parent"]) not in file.parents:
                return False
        elif "field" in clause:
            actual = file.mime_type if clause["field"] == "mimeType" else file.name
            wanted, op = clause["value"], clause["op"]
            hit = wanted.lower() in actual.lower() if op == "contains" else actual == wanted
            if hit == (op == "!="):
                return False
        elif "tval" in clause:
            # Nothing is ever trashed here: appDataFolder files cannot be trashed at all.
            if (clause["tval"] == "false") != (clause["top"] == "="):
                return False
        elif "key" in clause:
            bag = file.app_properties if clause["key"] == "appProperties" else file.properties
            if bag.get(clause["pk"]) != clause["pv"]:
                return False
    return True


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"drive:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, offset = raw.split(":", 1)
        if prefix == "drive" and int(offset) >= 0:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise legacy_error(400, "Invalid Value", "invalid", location="pageToken")


# --------------------------------------------------------------------------------------------
# Multipart/related bodies
# --------------------------------------------------------------------------------------------


def parse_multipart_related(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """Split an ``uploadType=multipart`` body into (metadata, media type, media bytes).

    google-api-python-client writes it with :mod:`email.mime` and plain LF line ends, other
    clients with CRLF; the standard library's MIME parser reads both.
    """
    if not content_type.lower().startswith("multipart/related"):
        raise _bad_multipart("Content-Type must be multipart/related")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise _bad_multipart("Expected 2 parts (metadata and media)")
    meta_part, media_part = parts
    raw = meta_part.get_payload(decode=True)
    try:
        metadata = json.loads(raw if isinstance(raw, bytes) and raw.strip() else b"{}")
    except ValueError:
        raise _bad_multipart("The metadata part is not JSON") from None
    if not isinstance(metadata, dict):
        raise _bad_multipart("The metadata part is not a JSON object")
    media = media_part.get_payload(decode=True)
    if not isinstance(media, bytes):
        raise _bad_multipart("The media part is empty")
    return metadata, media_part.get_content_type(), media


def _bad_multipart(why: str) -> GoogleApiError:
    return legacy_error(400, f"Bad multipart request: {why}.", "badContent")


# --------------------------------------------------------------------------------------------
# Router
# --------------------------------------------------------------------------------------------


class _Drive:
    """The request handlers' shared logic, bound to one emulator state."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.store = drive_store(state)

    def resolve(self, token: Caller, file_id: str) -> DriveFile:
        """The file behind an id or alias, as this app may see it (else 404 or 403)."""
        if file_id in APPDATA_ALIASES:
            if file_id != APPDATA:
                log.info("drive: fileId alias %r used (Drive v2 name) for appDataFolder", file_id)
            if DRIVE_APPDATA not in token.scopes:
                raise spaces_error()
            return self.store.appdata_folder(token.sub, token.app)
        if file_id == "root":
            if not space_granted(MY_DRIVE, token.scopes):
                raise spaces_error()
            return self.store.root_folder(token.sub)
        file = self.store.find(token.sub, file_id)
        if file is None:
            raise not_found(file_id)
        if file.space == APPDATA and file.app == token.app and DRIVE_APPDATA not in token.scopes:
            raise spaces_error()
        if not visible(file, token.app, token.scopes):
            raise not_found(file_id)
        return file

    def parent_for(self, token: Caller, parents: Any) -> DriveFile:
        """The folder a new file goes to; My Drive's root when no parent is named."""
        if parents is None or parents == []:
            if not space_granted(MY_DRIVE, token.scopes):
                raise spaces_error()
            return self.store.root_folder(token.sub)
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise legacy_error(400, "Invalid Value", "invalid", location="parents")
        if len(parents) > 1:
            raise legacy_error(
                403,
                "A shared drive item must have exactly one parent.",
                "teamDrivesParentLimit",
            )
        parent = self.resolve(token, parents[0])
        if not parent.is_folder:
            raise legacy_error(
                400, "The specified parent is not a folder.", "invalidParent", location="parents"
            )
        if parent.space == MY_DRIVE and not token.scopes & _MY_DRIVE_WRITE:
            raise spaces_error()
        return parent

    def new_file(
        self,
        token: Caller,
        metadata: dict[str, Any],
        content: bytes | None,
        media_type: str | None,
    ) -> DriveFile:
        parent = self.parent_for(token, metadata.get("parents"))
        now = self.state.clock.now()
        mime = metadata.get("mimeType") or media_type or "application/octet-stream"
        if content is None and mime != FOLDER_MIME and not metadata.get("mimeType"):
            mime = "application/octet-stream"
        file = DriveFile(
            id=new_file_id(),
            name=str(metadata.get("name") or "Untitled"),
            mime_type=str(mime),
            space=parent.space,
            app=token.app,
            parents=[parent.id],
            created=now,
            modified=now,
            content=content if mime != FOLDER_MIME else None,
            description=metadata.get("description"),
            app_properties=_string_map(metadata.get("appProperties")),
            properties=_string_map(metadata.get("properties")),
        )
        return self.store.put(token.sub, file)

    def updated(
        self,
        token: Caller,
        file: DriveFile,
        metadata: dict[str, Any],
        content: bytes | None,
        media_type: str | None,
    ) -> DriveFile:
        if not file.parents:  # My Drive's root or an app data folder
            raise _no_permission()
        changes: dict[str, Any] = {"modified": self.state.clock.now(), "version": file.version + 1}
        for key, attr in (
            ("name", "name"),
            ("mimeType", "mime_type"),
            ("description", "description"),
        ):
            if key in metadata:
                changes[attr] = metadata[key]
        for key, attr in (("appProperties", "app_properties"), ("properties", "properties")):
            if key in metadata:
                merged = dict(getattr(file, attr))
                for k, v in (metadata[key] or {}).items():
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = str(v)
                changes[attr] = merged
        if content is not None:
            changes["content"] = content
            if "mimeType" not in metadata and media_type:
                changes["mime_type"] = media_type
        return self.store.put(token.sub, replace(file, **changes))


def _no_permission() -> GoogleApiError:
    return legacy_error(
        403,
        "The user does not have sufficient permissions for this file.",
        "insufficientFilePermissions",
    )


def _string_map(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise legacy_error(400, "Invalid Value", "invalid", location="appProperties")
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _json_response(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, indent=1),
        status_code=status,
        media_type="application/json; charset=UTF-8",
    )


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise legacy_error(400, "Parse Error", "parseError") from None
    if not isinstance(value, dict):
        raise legacy_error(400, "Invalid JSON payload received.", "parseError")
    return value


def _fields(request: Request, *, listing: bool = False) -> FieldMask:
    return field_mask(request.query_params.get("fields"), listing=listing)


def build_router(state: EmulatorState) -> APIRouter:
    """Drive v3's ``files`` methods under ``/drive/v3`` and ``/upload/drive/v3``."""
    drive = _Drive(state)
    router = APIRouter(route_class=GoogleApiRoute, tags=["Drive v3"])

    @router.get("/drive/v3/files/{file_id}", summary="files.get", response_model=None)
    async def files_get(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, GET)
        file = drive.resolve(token, file_id)
        if request.query_params.get("alt") == "media":
            if file.content is None:
                raise legacy_error(
                    403,
                    "Only files with binary content can be downloaded. "
                    "Use Export with Docs Editors files.",
                    "fileNotDownloadable",
                    location="alt",
                )
            return Response(file.content, media_type=file.mime_type)
        return _json_response(apply_fields(file_resource(file), _fields(request)))

    @router.get("/drive/v3/files", summary="files.list", response_model=None)
    async def files_list(request: Request) -> Response:
        token = await authorize(state, request, LIST)
        query = request.query_params
        spaces = [s.strip() for s in query.get("spaces", MY_DRIVE).split(",") if s.strip()]
        if not spaces or any(not space_granted(s, token.scopes) for s in spaces):
            raise spaces_error()
        mask = _fields(request, listing=True)
        clauses = parse_query(query["q"]) if query.get("q") else []
        page_size = _page_size(query.get("pageSize"))
        offset = decode_page_token(query["pageToken"]) if query.get("pageToken") else 0
        aliases = {
            APPDATA: drive.store.appdata_folder(token.sub, token.app).id,
            "appfolder": drive.store.appdata_folder(token.sub, token.app).id,
        }
        if MY_DRIVE in spaces:
            aliases["root"] = drive.store.root_folder(token.sub).id
        found = [
            f
            for f in drive.store.files(token.sub)
            if f.space in spaces
            and visible(f, token.app, token.scopes)
            and matches(f, clauses, aliases)
        ]
        if query.get("orderBy"):
            found = _ordered(found, query["orderBy"])
        page = found[offset : offset + page_size]
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [file_resource(f) for f in page],
        }
        if offset + page_size < len(found):
            body["nextPageToken"] = encode_page_token(offset + page_size)
        return _json_response(apply_fields(body, mask))

    @router.post("/drive/v3/files", summary="files.create (metadata only)", response_model=None)
    async def files_create(request: Request) -> Response:
        token = await authorize(state, request, CREATE)
        mask = _fields(request)
        file = drive.new_file(token, await _json_body(request), None, None)
        return _json_response(apply_fields(file_resource(file), mask))

    @router.patch(
        "/drive/v3/files/{file_id}", summary="files.update (metadata)", response_model=None
    )
    async def files_update(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, UPDATE)
        mask = _fields(request)
        metadata = await _json_body(request)
        file = drive.updated(token, drive.resolve(token, file_id), metadata, None, None)
        return _json_response(apply_fields(file_resource(file), mask))

    @router.delete("/drive/v3/files/{file_id}", summary="files.delete", response_model=None)
    async def files_delete(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, DELETE)
        file = drive.resolve(token, file_id)
        if not file.parents:  # My Drive's root or an app data folder
            raise _no_permission()
        drive.store.delete(token.sub, file.id)
        return Response(status_code=204)

    @router.post("/upload/drive/v3/files", summary="files.create (upload)", response_model=None)
    async def upload_create(request: Request) -> Response:
        token = await authorize(state, request, CREATE)
        return await _upload(drive, token, request, file_id=None)

    @router.patch(
        "/upload/drive/v3/files/{file_id}", summary="files.update (upload)", response_model=None
    )
    async def upload_update(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, UPDATE)
        drive.resolve(token, file_id)
        return await _upload(drive, token, request, file_id=file_id)

    @router.put("/upload/drive/v3/files", summary="resumable upload (data)", response_model=None)
    async def resumable_put(request: Request) -> Response:
        return await _resumable_data(drive, request)

    @router.put("/upload/drive/v3/files/{file_id}", include_in_schema=False, response_model=None)
    async def resumable_put_update(file_id: str, request: Request) -> Response:
        return await _resumable_data(drive, request)

    return router


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise legacy_error(400, "Invalid Value", "invalid", location="pageSize") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise legacy_error(
            400,
            f"Invalid value '{size}'. Values must be within the range: [1, {MAX_PAGE_SIZE}]",
            "invalid",
            location="pageSize",
        )
    return size


_ORDER_KEYS = {
    "name": lambda f: f.name.lower(),
    "createdTime": lambda f: f.created,
    "modifiedTime": lambda f: f.modified,
    "folder": lambda f: not f.is_folder,
}


def _ordered(files: list[DriveFile], order_by: str) -> list[DriveFile]:
    # Apply the sort keys last-to-first so that the first key wins (sorted() is stable).
    for term in reversed([t.strip() for t in order_by.split(",") if t.strip()]):
        key, _, direction = term.partition(" ")
        if key not in _ORDER_KEYS:
            raise legacy_error(400, "Invalid Value", "invalid", location="orderBy")
        files = sorted(files, key=_ORDER_KEYS[key], reverse=direction.strip() == "desc")
    return files


async def _upload(
    drive: _Drive, token: Caller, request: Request, *, file_id: str | None
) -> Response:
    upload_type = request.query_params.get("uploadType", "")
    content_type = request.headers.get("content-type", "application/octet-stream")
    mask = _fields(request)
    if upload_type == "resumable":
        metadata = await _json_body(request)
        if file_id is None:
            drive.parent_for(token, metadata.get("parents"))  # fail now, not after the bytes
        total = request.headers.get("x-upload-content-length")
        pending = _PendingUpload(
            caller=token,
            metadata=metadata,
            mime_type=request.headers.get("x-upload-content-type") or "",
            file_id=file_id,
            total=int(total) if total and total.isdigit() else None,
        )
        upload_id = drive.store.start_upload(pending)
        origin = base_url(drive.state, request)
        location = f"{origin}{request.url.path}?uploadType=resumable&upload_id={upload_id}"
        if request.query_params.get("fields"):
            location += "&fields=" + request.query_params["fields"]
        return Response(
            status_code=200, headers={"Location": location, "X-GUploader-UploadID": upload_id}
        )
    body = await request.body()
    if upload_type == "multipart":
        if len(body) > MULTIPART_LIMIT + 64 * 1024:
            raise legacy_error(
                413,
                "Request too large for multipart upload; use uploadType=resumable.",
                "uploadTooLarge",
            )
        metadata, media_type, content = parse_multipart_related(content_type, body)
    elif upload_type == "media":
        metadata, media_type, content = {}, content_type.split(";")[0].strip(), body
    else:
        raise legacy_error(
            400,
            f"Invalid upload type: {upload_type or '(none)'}. Use media, multipart or resumable.",
            "invalid",
            location="uploadType",
        )
    file = _store_upload(drive, token, file_id, metadata, content, media_type)
    return _json_response(apply_fields(file_resource(file), mask))


def _store_upload(
    drive: _Drive,
    token: Caller,
    file_id: str | None,
    metadata: dict[str, Any],
    content: bytes,
    media_type: str,
) -> DriveFile:
    if file_id is None:
        return drive.new_file(token, metadata, content, media_type)
    return drive.updated(token, drive.resolve(token, file_id), metadata, content, media_type)


_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


async def _resumable_data(drive: _Drive, request: Request) -> Response:
    """A PUT of a resumable session: the upload id is the credential, as at Google."""
    pending = drive.store.upload(request.query_params.get("upload_id", ""))
    if pending is None:
        raise legacy_error(404, "Upload session not found or expired.", "notFound")
    chunk = await request.body()
    match = _CONTENT_RANGE.fullmatch(request.headers.get("content-range", "").strip())
    total = pending.total
    if match is not None:
        start = int(match.group(1)) if match.group(1) else len(pending.received)
        if start != len(pending.received):
            return _resume_incomplete(len(pending.received))
        if match.group(3) != "*":
            total = int(match.group(3))
    pending.received += chunk
    if total is None and match is None:
        total = len(pending.received)
    if total is None or len(pending.received) < total:
        return _resume_incomplete(len(pending.received))
    upload_id = request.query_params["upload_id"]
    drive.store.finish_upload(upload_id)
    # The session was authorised when it started; act with that identity and its scopes.
    owner = pending.caller
    mime = pending.mime_type or request.headers.get("content-type") or "application/octet-stream"
    file = _store_upload(
        drive, owner, pending.file_id, pending.metadata, bytes(pending.received), mime
    )
    return _json_response(apply_fields(file_resource(file), _fields(request)))


def _resume_incomplete(received: int) -> Response:
    headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
    return Response(status_code=308, headers=headers)
