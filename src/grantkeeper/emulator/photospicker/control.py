"""Control calls for the Picker: a user's own library, picking as the user would, settings.

``POST /emulator/users/{sub}/library`` fills the user's Google Photos library with photos no app
created (the Library API hides them from every app, as at Google since 2025);
``POST /emulator/photospicker/sessions/{id}/pick`` picks and taps Done as the user would on the
picker page, so tests need no browser.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grantkeeper.emulator.errors import ControlError
from grantkeeper.emulator.google_api import base_url
from grantkeeper.emulator.photos.library import MediaItem, new_photos_id
from grantkeeper.emulator.photos.pictures import generate_photo
from grantkeeper.emulator.photospicker.resources import picker_uri, rfc3339, session_resource
from grantkeeper.emulator.photospicker.sessions import (
    PickerError,
    PickerSettings,
    PickerStore,
    picker_store,
)
from grantkeeper.emulator.state import EmulatorState

MAX_FILL = 200


class LibraryFill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(6, ge=1, le=MAX_FILL)
    width: int = Field(640, ge=16, le=4096)
    height: int = Field(480, ge=16, le=4096)
    seed: int | None = None


class PickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(None, ge=1)
    """Pick the user's ``count`` newest photos."""
    media_item_ids: list[str] | None = None
    """Pick exactly these library items, in this order."""

    @model_validator(mode="after")
    def _one_of(self) -> PickIn:
        if (self.count is None) == (self.media_item_ids is None):
            raise ValueError("give either count or media_item_ids")
        return self


def _problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or "body"
    return f"{where}: {problem['msg']}"


def _library_item(item: MediaItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "filename": item.filename,
        "mimeType": item.mime_type,
        "width": item.width,
        "height": item.height,
        "createTime": rfc3339(item.created),
        "createdByApp": item.app or None,
    }


def build_router(state: EmulatorState) -> APIRouter:
    def store() -> PickerStore:
        # Looked up on each call: POST /emulator/reset replaces it with an empty one.
        return picker_store(state)

    router = APIRouter(prefix="/emulator", tags=["Emulator control: Photos Picker"])

    @router.post("/users/{sub}/library", summary="Fill a user's own library (no app made it)")
    async def fill_library(sub: str, fill: LibraryFill) -> Response:
        """``count`` generated photos in the user's library, created by no app: the Picker
        shows them, the Library API hides them from every app."""
        with state.lock:
            known = sub in state.users
        if not known:
            raise ControlError(404, "unknown_user", f"No user with sub {sub}.")
        first = fill.seed if fill.seed is not None else secrets.randbelow(1 << 30)
        created = []
        for n in range(fill.count):
            content = await anyio.to_thread.run_sync(
                generate_photo, first + n, fill.width, fill.height
            )
            item = MediaItem(
                id=new_photos_id(),
                app="",
                filename=f"PXL_{first % 100000 + n:05d}.jpg",
                mime_type="image/jpeg",
                width=fill.width,
                height=fill.height,
                created=state.clock.now(),
                content=content,
                media_key=secrets.token_urlsafe(48),
            )
            store().photos.add_item(sub, item, None, first=False)
            created.append(_library_item(item))
        body = {"mediaItems": created, "librarySize": len(store().library(sub))}
        return Response(json.dumps(body), status_code=201, media_type="application/json")

    @router.get("/users/{sub}/library", summary="A user's whole library, newest first")
    def list_library(sub: str) -> dict[str, Any]:
        with state.lock:
            known = sub in state.users
        if not known:
            raise ControlError(404, "unknown_user", f"No user with sub {sub}.")
        return {"mediaItems": [_library_item(i) for i in store().library(sub)]}

    @router.post(
        "/photospicker/sessions/{session_id}/pick",
        summary="Pick photos and tap Done, as the user would on the picker page",
    )
    async def pick(session_id: str, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = PickIn.model_validate_json(raw or b"{}")
        except ValidationError as error:
            raise ControlError(400, "invalid_request", _problem(error)) from error
        session = store().get(session_id)
        if session is None:
            raise ControlError(
                404, "unknown_session", "No live picking session has this id (expired or deleted?)."
            )
        if body.media_item_ids is not None:
            ids = body.media_item_ids
        else:
            assert body.count is not None
            library = store().library(session.sub)
            if body.count > len(library):
                raise ControlError(
                    400,
                    "not_enough_photos",
                    f"The user's library holds {len(library)} photo(s), fewer than {body.count}; "
                    "fill it with POST /emulator/users/{sub}/library.",
                )
            ids = [item.id for item in library[: body.count]]
        try:
            store().pick(session, ids)
        except PickerError as error:
            status = 409 if error.reason == "session_done" else 400
            raise ControlError(status, error.reason, str(error)) from error
        origin = base_url(state, request)
        resource = session_resource(
            session, origin, state.clock.now(), store().settings.poll_interval
        )
        return resource | {"pickedMediaItemIds": list(session.picked)}

    @router.get("/photospicker/settings", summary="The Picker's behaviour settings")
    def get_settings() -> dict[str, Any]:
        return store().settings.model_dump()

    @router.post("/photospicker/settings", summary="Change any subset of the Picker's settings")
    def update_settings(body: dict[str, Any]) -> dict[str, Any]:
        try:
            store().settings = PickerSettings.model_validate(store().settings.model_dump() | body)
        except ValidationError as error:
            raise ControlError(400, "invalid_settings", _problem(error)) from error
        return store().settings.model_dump()

    @router.get("/photospicker/sessions", summary="Every live picking session")
    def list_sessions(request: Request) -> list[dict[str, Any]]:
        origin = base_url(state, request)
        return [
            {"id": s.id, "sub": s.sub, "pickerUri": picker_uri(origin, s), "done": s.done}
            for s in store().sessions()
        ]

    return router
