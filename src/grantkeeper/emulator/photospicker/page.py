"""The page behind ``pickerUri``: the user picks from their own library and taps Done.

Google's ``pickerUri`` opens Google Photos, where the user (signed in to the account that owns
the session) picks photos; ``/autoclose`` appended closes the window after Done instead of
showing a "Done" screen; after Done the URI no longer works. The emulator has no browser sign-in,
so the session id in the URI is what lets the page show that user's library. The page is plain
HTML (a form of checkboxes), so tests can also drive it with an HTTP client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from grantkeeper.emulator.google_api import count_call
from grantkeeper.emulator.photos.pictures import rendition
from grantkeeper.emulator.photospicker.sessions import (
    PickerError,
    PickerStore,
    PickingSession,
    picker_store,
)
from grantkeeper.emulator.state import EmulatorState

THUMBNAIL = "w320-h320"

_templates = Environment(
    loader=PackageLoader("grantkeeper.emulator.photospicker", "templates"),
    autoescape=select_autoescape(["html"]),
)


def _message(status: int, title: str, text: str, autoclose: bool = False) -> HTMLResponse:
    html = _templates.get_template("done.html").render(title=title, text=text, autoclose=autoclose)
    return HTMLResponse(html, status_code=status)


def _origin_label(app: str) -> str:
    return f"uploaded by app {app}" if app else "your photo"


def build_router(state: EmulatorState) -> APIRouter:
    """``GET``/``POST /picker/{id}`` (and ``/autoclose``), thumbnails for the page."""

    def store() -> PickerStore:
        # Looked up on each call: POST /emulator/reset replaces it with an empty one.
        return picker_store(state)

    router = APIRouter(include_in_schema=False)

    def open_session(session_id: str) -> PickingSession | HTMLResponse:
        session = store().get(session_id)
        if session is None:
            return _message(
                404,
                "This link does not work",
                "The picking session does not exist, was deleted, or has expired. Go back to the "
                "app and start again.",
            )
        if session.done:
            return _message(
                410,
                "This picking session is finished",
                "You already tapped Done. To pick more photos, go back to the app: it needs a new "
                "session.",
            )
        return session

    def render(session: PickingSession, autoclose: bool, problem: str = "") -> HTMLResponse:
        with state.lock:
            user = state.users.get(session.sub)
        photos: list[dict[str, Any]] = [
            {
                "id": item.id,
                "filename": item.filename,
                "thumbnail": f"/picker/{session.id}/thumbnails/{item.id}",
                "origin": _origin_label(item.app),
            }
            for item in store().library(session.sub)
        ]
        html = _templates.get_template("picker.html").render(
            action=f"/picker/{session.id}",
            autoclose=autoclose,
            photos=photos,
            max_items=session.max_items,
            user_name=user.name if user else session.sub,
            user_email=user.email if user else "",
            problem=problem,
        )
        return HTMLResponse(html, status_code=400 if problem else 200)

    @router.get("/picker/{session_id}")
    async def picker_page(session_id: str) -> Response:
        await count_call(state, "photospicker.picker")
        session = open_session(session_id)
        return session if isinstance(session, HTMLResponse) else render(session, False)

    @router.get("/picker/{session_id}/autoclose")
    async def picker_page_autoclose(session_id: str) -> Response:
        await count_call(state, "photospicker.picker")
        session = open_session(session_id)
        return session if isinstance(session, HTMLResponse) else render(session, True)

    @router.get("/picker/{session_id}/thumbnails/{item_id}")
    async def thumbnail(session_id: str, item_id: str) -> Response:
        session = store().get(session_id)
        item = store().item(session.sub, item_id) if session and not session.done else None
        if item is None:
            return Response(status_code=404)
        content = await anyio.to_thread.run_sync(rendition, item.content, THUMBNAIL)
        return Response(content, media_type="image/jpeg", headers={"Cache-Control": "private"})

    @router.post("/picker/{session_id}")
    async def done(session_id: str, request: Request) -> Response:
        session = open_session(session_id)
        if isinstance(session, HTMLResponse):
            return session
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = parse_qsl(body, keep_blank_values=True)
        picked = [value for key, value in fields if key == "item"]
        autoclose = any(key == "autoclose" and value for key, value in fields)
        try:
            store().pick(session, picked)
        except PickerError as error:
            return render(session, autoclose, str(error))
        return _message(
            200,
            "Done",
            f"You shared {len(session.picked)} photo(s) with the app. You can close this window "
            "and go back to the app.",
            autoclose=autoclose,
        )

    return router
