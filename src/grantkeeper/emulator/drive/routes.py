"""Drive API v3, enough for Google's guide: the hidden ``appDataFolder`` of each (user, app).

Paths are Google's: ``/drive/v3/files…`` for metadata and downloads, ``/upload/drive/v3/files…``
for uploads (``uploadType=multipart`` as google-api-python-client builds it, ``media``, and
``resumable`` in one or more PUTs). Access follows Google's rules (google-protocol.md §7): the
``appDataFolder`` space needs ``drive.appdata`` — even the full ``drive`` scope does not reach it
— and each app sees only its own folder; the ``drive`` space (My Drive) needs ``drive`` (all of
the user's files) or ``drive.file`` (the files this app created). A space the token does not reach
answers 403 "The granted scopes do not give access to all of the requested spaces.".
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response

from grantkeeper.emulator.drive.access import (
    DRIVE,
    DRIVE_APPDATA,
    DRIVE_FILE,
    DRIVE_METADATA,
    DRIVE_METADATA_READONLY,
    DRIVE_READONLY,
    MY_DRIVE_WRITE,
    no_permission,
    not_for_app_data,
    not_found,
    space_granted,
    spaces_error,
    visible,
)
from grantkeeper.emulator.drive.files import (
    APPDATA,
    APPDATA_ALIASES,
    FOLDER_MIME,
    MY_DRIVE,
    DriveFile,
    PendingUpload,
    drive_store,
    new_file_id,
)
from grantkeeper.emulator.drive.multipart import MULTIPART_LIMIT, parse_multipart_related
from grantkeeper.emulator.drive.query import (
    decode_page_token,
    encode_page_token,
    field_mask,
    file_resource,
    matches,
    ordered,
    parse_page_size,
    parse_query,
)
from grantkeeper.emulator.errors import GoogleApiError, legacy_error, rpc_error
from grantkeeper.emulator.google_api import (
    ApiMethod,
    Caller,
    FieldMask,
    GoogleApiRoute,
    apply_fields,
    authorize,
    base_url,
)
from grantkeeper.emulator.state import EmulatorState

log = logging.getLogger(__name__)

SERVICE = "drive.googleapis.com"
_AUTH = "https://www.googleapis.com/auth/"

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


def _method(name: str, rpc: str, scopes: frozenset[str]) -> ApiMethod:
    return ApiMethod(
        SERVICE, f"google.apps.drive.v3.DriveFiles.{rpc}", f"drive.files.{name}", scopes
    )


GET = _method("get", "Get", _READ_SCOPES)
LIST = _method("list", "List", _READ_SCOPES)
CREATE = _method("create", "Create", _WRITE_SCOPES)
UPDATE = _method("update", "Update", _UPDATE_SCOPES)
DELETE = _method("delete", "Delete", _WRITE_SCOPES)
SHARE = ApiMethod(
    SERVICE,
    "google.apps.drive.v3.DrivePermissions.Create",
    "drive.permissions.create",
    _WRITE_SCOPES,
)


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
        if parent.space == MY_DRIVE and not token.scopes & MY_DRIVE_WRITE:
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
            raise no_permission()
        if file.space == APPDATA and metadata.get("trashed"):
            raise not_for_app_data("trash")
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


def _refuse_move_out_of_app_data(
    drive: _Drive, token: Caller, file: DriveFile, request: Request
) -> None:
    """``addParents``/``removeParents`` that would take an app data file out of its space."""
    if file.space != APPDATA:
        return
    added = [p for p in request.query_params.get("addParents", "").split(",") if p]
    if request.query_params.get("removeParents") and not added:
        raise not_for_app_data("move")
    for parent in added:
        if parent in APPDATA_ALIASES:
            continue
        try:
            inside = drive.resolve(token, parent).space == APPDATA
        except GoogleApiError:
            inside = False  # My Drive's root or a file this token cannot even see
        if not inside:
            raise not_for_app_data("move")


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
        page_size = parse_page_size(query.get("pageSize"))
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
            found = ordered(found, query["orderBy"])
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
        file = drive.resolve(token, file_id)
        _refuse_move_out_of_app_data(drive, token, file, request)
        file = drive.updated(token, file, metadata, None, None)
        return _json_response(apply_fields(file_resource(file), mask))

    @router.post(
        "/drive/v3/files/{file_id}/permissions",
        summary="permissions.create (sharing)",
        response_model=None,
    )
    async def permissions_create(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, SHARE)
        file = drive.resolve(token, file_id)
        if file.space == APPDATA:
            raise not_for_app_data("share")
        raise rpc_error(
            501, "The emulator does not model sharing of My Drive files (permissions.create)."
        )

    @router.delete("/drive/v3/files/{file_id}", summary="files.delete", response_model=None)
    async def files_delete(file_id: str, request: Request) -> Response:
        token = await authorize(state, request, DELETE)
        file = drive.resolve(token, file_id)
        if not file.parents:  # My Drive's root or an app data folder
            raise no_permission()
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
        pending = PendingUpload(
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
