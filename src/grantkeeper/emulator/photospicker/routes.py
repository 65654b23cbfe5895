"""Photos Picker API v1 on the emulator, and the base URLs of picked items.

Google serves the Picker at ``photospicker.googleapis.com/v1/...``; on the emulator's one origin
its ``/v1/mediaItems`` would collide with the Photos Library's, so the Picker lives under
``/photospicker/`` and its discovery document's ``servicePath`` says so (a client built from
that document never notices). Every call needs ``photospicker.mediaitems.readonly``.

Errors follow Google's reference: ``mediaItems.list`` before the user tapped Done is
``FAILED_PRECONDITION``; too many sessions is ``RESOURCE_EXHAUSTED``; a session that is unknown,
expired, deleted or another user's is ``NOT_FOUND``.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response

from grantkeeper.emulator.errors import GoogleApiError
from grantkeeper.emulator.google_api import (
    ApiMethod,
    FieldSelectionError,
    GoogleApiRoute,
    apply_fields,
    authorize,
    base_url,
    parse_fields,
)
from grantkeeper.emulator.photos.pictures import rendition
from grantkeeper.emulator.photos.resources import decode_page_token, page_size, paged
from grantkeeper.emulator.photospicker.resources import (
    invalid_argument,
    not_picked_yet,
    picked_item_resource,
    session_not_found,
    session_resource,
    too_many_sessions,
)
from grantkeeper.emulator.photospicker.sessions import (
    DEFAULT_MAX_ITEMS,
    PickerError,
    PickerStore,
    PickingSession,
    picker_store,
)
from grantkeeper.emulator.state import EmulatorState

SERVICE = "photospicker.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/photospicker.mediaitems.readonly"
#: Where the Picker's ``v1/...`` paths start on the emulator (``servicePath`` of its document).
SERVICE_PATH = "photospicker/"
PREFIX = "/" + SERVICE_PATH.rstrip("/")
ITEM_PAGE = (50, 100)  # (default, maximum) pageSize of mediaItems.list, Google's reference


def _method(rpc: str, endpoint: str) -> ApiMethod:
    return ApiMethod(
        SERVICE,
        f"google.photos.picker.v1.PickerService.{rpc}",
        f"photospicker.{endpoint}",
        frozenset({SCOPE}),
    )


CREATE = _method("CreateSession", "sessions.create")
GET = _method("GetSession", "sessions.get")
DELETE = _method("DeleteSession", "sessions.delete")
LIST_ITEMS = _method("ListMediaItems", "mediaItems.list")
MEDIA = _method("GetMedia", "media")


def _json(value: Any, request: Request) -> Response:
    spec = request.query_params.get("fields")
    if spec:
        try:
            value = apply_fields(value, parse_fields(spec))
        except FieldSelectionError:
            raise invalid_argument(f"Invalid field selection {spec}") from None
    return Response(json.dumps(value, indent=2), media_type="application/json; charset=UTF-8")


def _max_items(body: dict[str, Any]) -> int:
    config = body.get("pickingConfig") or {}
    if not isinstance(config, dict):
        raise invalid_argument("pickingConfig must be an object.")
    raw = config.get("maxItemCount")
    if raw is None or raw == "" or raw == "0":
        return DEFAULT_MAX_ITEMS
    try:
        count = int(raw)
    except (TypeError, ValueError):
        raise invalid_argument("pickingConfig.maxItemCount must be an integer.") from None
    if not 0 <= count <= DEFAULT_MAX_ITEMS:
        raise invalid_argument(
            f"pickingConfig.maxItemCount must be between 1 and {DEFAULT_MAX_ITEMS}."
        )
    return count or DEFAULT_MAX_ITEMS


def _download_refused(status: int, message: str) -> GoogleApiError:
    return GoogleApiError(status, {"error": {"code": status, "message": message}})


def build_router(state: EmulatorState) -> APIRouter:
    """``/photospicker/v1/sessions…``, ``/photospicker/v1/mediaItems`` and ``/lh3/ppa/…``."""

    def store() -> PickerStore:
        # Looked up on each call: POST /emulator/reset replaces it with an empty one.
        return picker_store(state)

    router = APIRouter(route_class=GoogleApiRoute, tags=["Photos Picker v1"])

    def view(session: PickingSession, request: Request) -> dict[str, Any]:
        return session_resource(
            session,
            base_url(state, request),
            state.clock.now(),
            store().settings.poll_interval,
        )

    def owned(session_id: str, sub: str, app: str) -> PickingSession:
        session = store().get(session_id, sub, app)
        if session is None:
            raise session_not_found()
        return session

    @router.post(PREFIX + "/v1/sessions", summary="sessions.create", response_model=None)
    async def sessions_create(request: Request) -> Response:
        caller = await authorize(state, request, CREATE)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise invalid_argument("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise invalid_argument("Invalid JSON payload received. Expected a PickingSession.")
        try:
            session = store().create(
                caller.sub,
                caller.app,
                _max_items(body),
                request.query_params.get("requestId") or None,
            )
        except PickerError as error:
            raise too_many_sessions(str(error)) from None
        return _json(view(session, request), request)

    @router.get(PREFIX + "/v1/sessions/{session_id}", summary="sessions.get", response_model=None)
    async def sessions_get(session_id: str, request: Request) -> Response:
        caller = await authorize(state, request, GET)
        return _json(view(owned(session_id, caller.sub, caller.app), request), request)

    @router.delete(
        PREFIX + "/v1/sessions/{session_id}", summary="sessions.delete", response_model=None
    )
    async def sessions_delete(session_id: str, request: Request) -> Response:
        caller = await authorize(state, request, DELETE)
        store().delete(owned(session_id, caller.sub, caller.app).id)
        return _json({}, request)

    @router.get(PREFIX + "/v1/mediaItems", summary="mediaItems.list", response_model=None)
    async def media_items_list(request: Request) -> Response:
        caller = await authorize(state, request, LIST_ITEMS)
        query = request.query_params
        session_id = query.get("sessionId")
        if not session_id:
            raise invalid_argument("sessionId is required.")
        session = owned(session_id, caller.sub, caller.app)
        if not session.done:
            raise not_picked_yet()
        size = page_size(query.get("pageSize"), ITEM_PAGE)
        kind = "picked-" + session.id[:8]  # a token of one session is refused by another
        offset = decode_page_token(query.get("pageToken"), kind)
        page, token = paged(store().picked_items(session), offset, size, kind)
        origin = base_url(state, request)
        body: dict[str, Any] = {
            "mediaItems": [
                picked_item_resource(
                    item, f"{origin}/lh3/ppa/{store().mint_base_url(caller.sub, caller.app, item)}"
                )
                for item in page
            ]
        }
        if token:
            body["nextPageToken"] = token
        return _json(body, request)

    @router.get(
        "/lh3/ppa/{spec}", summary="A picked item's baseUrl (=d, =wN-hN)", response_model=None
    )
    async def picked_download(spec: str, request: Request) -> Response:
        # Unlike the Library's, a Picker baseUrl needs the user's OAuth token (Google's guide:
        # "List and retrieve media items"), and it works for 60 minutes after it was listed,
        # or less if the user removes the app: then the app has no live token to send.
        caller = await authorize(state, request, MEDIA)
        key, _, options = spec.partition("=")
        grant, alive = store().open_base_url(key)
        if grant is None:
            raise _download_refused(404, "No media item has this base URL.")
        if grant.sub != caller.sub or grant.app != caller.app:
            # Another user's, or another app's: only the app the user picked for may open it.
            raise _download_refused(403, "This base URL belongs to another user or app.")
        if not alive:
            raise _download_refused(
                403,
                "This base URL has expired (base URLs work for 60 minutes after mediaItems.list). "
                "List the session's media items again while the session lasts.",
            )
        item = store().item(grant.sub, grant.item_id)
        if item is None:
            raise _download_refused(404, "The media item is no longer in the user's library.")
        content = await anyio.to_thread.run_sync(rendition, item.content, options)
        media_type = item.mime_type if content is item.content else "image/jpeg"
        return Response(content, media_type=media_type)

    return router
