"""The dev-mode page at ``/`` (``grantkeeper serve --emulator``): Sign in with Google in a real
browser, allow Google Photos access incrementally, pick photos with the Google Photos Picker,
go away, and let the backend enhance them into the app's album "Enhanced"; see before and after.

The browser runs the authorization-code flow against the provider's consent page (found by
OpenID discovery, so the emulator here): ``access_type=offline``, incremental scopes
(``include_granted_scopes=true``), a random ``state`` checked on return, and a redirect back to
this page. The page then POSTs the code to ``/v1/google/signin`` with ``X-Requested-With`` and
``platform: "web"``; the keeper redeems it with ``GRANTKEEPER_WEB_REDIRECT_URI`` (this page's
URL), as Google requires for redirect-flow codes.

The Picker: the backend creates a session with the keeper's credentials and the page opens its
``pickerUri`` + ``/autoclose`` in a new window; the page then polls the backend every
``pollInterval``, and the backend polls ``sessions.get``. Once the user is done the backend
fetches the originals at once (their base URLs die after 60 minutes) and keeps them; the job
later works from those copies.

The ``/dev/*`` routes exist only in dev mode, answer only loopback clients, and want
``X-Requested-With`` on every POST.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from grantkeeper.demo.narration import explain
from grantkeeper.demo.photo_job import PHOTOS_SCOPES, enhance_and_upload, save_pairs
from grantkeeper.demo.picker import (
    PICKER_SCOPE,
    Fetched,
    Original,
    PhotosPicker,
    fetch_originals,
    seconds,
)
from grantkeeper.devmode import DevWorld
from grantkeeper.keeper import Keeper
from grantkeeper.web.guards import require_requested_with
from grantkeeper.web.problems import PROBLEM_JSON

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SIGN_IN_SCOPES = ("openid", "email", "profile", DRIVE_APPDATA)
#: What the page asks for when the user first wants photos enhanced (incremental).
PHOTO_SCOPES = (PICKER_SCOPE, *PHOTOS_SCOPES)
LIBRARY_PHOTOS = 6
#: The dev emulator asks the page to poll every second, not Google's few seconds.
DEV_POLL_INTERVAL = 1
#: How far "the user goes away" moves the emulator's clock: past a fresh token's hour.
AWAY_SECONDS = 65 * 60
_SUB = re.compile(r"^\d{1,255}$")
_JOB = re.compile(r"^[0-9a-f]{16}$")
_PICTURE = re.compile(r"^[\w.-]{1,200}\.jpg$")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_HERE = Path(__file__).parent
_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

_templates = Environment(
    loader=PackageLoader("grantkeeper.demo", "templates"),
    autoescape=select_autoescape(["html"]),
)


@dataclass(frozen=True)
class PageConfig:
    """What the page's script needs to start the code flow (nothing secret)."""

    authorization_endpoint: str
    client_id: str
    redirect_uri: str
    sign_in_scopes: tuple[str, ...]
    photos_scopes: tuple[str, ...]


def _dev_only(request: Request) -> None:
    # The emulator's control API is open to whoever reaches it; keep its helpers on this host.
    host = request.client.host if request.client else ""
    if host not in _LOOPBACK:
        raise HTTPException(403, "The dev page's helpers answer only on this machine.")
    if request.method == "POST":
        require_requested_with(request)


def _sub(sub: str) -> str:
    if not _SUB.match(sub):
        raise HTTPException(404, "No such user.")
    return sub


def _keep(originals: tuple[Original, ...], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for original in originals:
        (directory / Path(original.filename).name).write_bytes(original.content)


def _job_failed(error: BaseException, title: str) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": 502,
        "detail": explain(error),
    }
    return JSONResponse(body, status_code=502, media_type=PROBLEM_JSON)


def install_page(app: FastAPI, world: DevWorld) -> None:
    """Add the page at ``/``, its assets under ``/static`` and its helpers under ``/dev``."""
    settings = world.settings
    discovery = httpx.get(settings.issuer.rstrip("/") + "/.well-known/openid-configuration")
    discovery.raise_for_status()
    config = PageConfig(
        authorization_endpoint=discovery.json()["authorization_endpoint"],
        client_id=world.web_client_id,
        redirect_uri=settings.web_redirect_uri,
        sign_in_scopes=SIGN_IN_SCOPES,
        photos_scopes=PHOTO_SCOPES,
    )
    emulator_url = world.emulator.base_url
    photos_discovery = emulator_url + "/discovery/v1/apis/photoslibrary/v1/rest"
    picker_discovery = emulator_url + "/discovery/v1/apis/photospicker/v1/rest"
    pictures = settings.data_dir / "page-photos"
    httpx.post(
        emulator_url + "/emulator/photospicker/settings",
        json={"poll_interval": DEV_POLL_INTERVAL},
    ).raise_for_status()
    #: The originals each user picked, as the backend keeps them (sub -> what was fetched).
    picked: dict[str, Fetched] = {}
    html = _templates.get_template("page.html").render(config=asdict(config))
    router = APIRouter(dependencies=[Depends(_dev_only)], include_in_schema=False)

    def keeper_of(request: Request) -> Keeper:
        keeper: Keeper = request.app.state.keeper
        return keeper

    @router.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": _CSP})

    @router.get("/dev/users/{sub}")
    async def user_state(sub: str, request: Request) -> JSONResponse:
        keeper = keeper_of(request)
        found = await keeper.user(_sub(sub))
        body = {
            **found.to_json(),
            "now": keeper.clock.now().isoformat().replace("+00:00", "Z"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.post("/dev/users/{sub}/library")
    async def fill_library(sub: str) -> JSONResponse:
        """Photos the user took: in their Google Photos library, created by no app."""
        async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as http:
            reply = await http.post(
                f"/emulator/users/{_sub(sub)}/library", json={"count": LIBRARY_PHOTOS}
            )
        if reply.status_code != 201:
            raise HTTPException(404, "The emulator does not know this user.")
        return JSONResponse({"library_size": reply.json()["librarySize"]})

    @router.post("/dev/users/{sub}/picker")
    async def start_picking(sub: str, request: Request) -> JSONResponse:
        # Raises MissingScopes (403, with advice) if the Picker scope was never granted.
        credentials = await keeper_of(request).credentials(_sub(sub), [PICKER_SCOPE])

        def create() -> dict[str, Any]:
            with PhotosPicker(credentials, picker_discovery) as picker:
                return picker.create_session(max_items=10)

        try:
            session = await asyncio.to_thread(create)
        except Exception as error:  # every Picker failure becomes one problem document
            return _job_failed(error, "The Photos Picker refused")
        return JSONResponse(
            {
                "session_id": session["id"],
                "picker_uri": session["pickerUri"],
                "poll_interval": seconds(session["pollingConfig"]["pollInterval"], 5.0),
            }
        )

    @router.get("/dev/users/{sub}/picker/{session_id}")
    async def picking_state(sub: str, session_id: str, request: Request) -> JSONResponse:
        credentials = await keeper_of(request).credentials(_sub(sub), [PICKER_SCOPE])

        def poll() -> dict[str, Any] | Fetched:
            with PhotosPicker(credentials, picker_discovery) as picker:
                session = picker.get_session(session_id)
                if not session.get("mediaItemsSet"):
                    return session
                # Now, while the base URLs work: they die 60 minutes after this listing.
                fetched = fetch_originals(picker, session_id, now=keeper_of(request).clock.now)
                picker.delete_session(session_id)
                return fetched

        try:
            outcome = await asyncio.to_thread(poll)
        except Exception as error:
            return _job_failed(error, "The Photos Picker refused")
        if isinstance(outcome, dict):
            polling = outcome.get("pollingConfig") or {}
            return JSONResponse(
                {
                    "state": "waiting",
                    "poll_interval": seconds(polling.get("pollInterval"), 5.0),
                    "timeout_in": seconds(polling.get("timeoutIn"), 0.0),
                },
                headers={"Cache-Control": "no-store"},
            )
        kept = pictures / "picked" / sub
        await asyncio.to_thread(_keep, outcome.originals, kept)
        picked[sub] = outcome
        return JSONResponse(
            {
                "state": "picked",
                "count": len(outcome.originals),
                "base_urls_die_at": outcome.base_urls_die_at.isoformat().replace("+00:00", "Z"),
                "photos": [
                    {
                        "filename": o.filename,
                        "src": f"/dev/users/{sub}/picked/{Path(o.filename).name}",
                    }
                    for o in outcome.originals
                ],
            },
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/dev/users/{sub}/picked/{name}")
    async def picked_original(sub: str, name: str) -> FileResponse:
        path = pictures / "picked" / _sub(sub) / name
        if not _PICTURE.match(name) or not path.is_file():
            raise HTTPException(404, "No such picture.")
        return FileResponse(path, media_type="image/jpeg")

    @router.post("/dev/away")
    async def user_goes_away() -> JSONResponse:
        async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as http:
            reply = await http.post("/emulator/clock", json={"advance_seconds": AWAY_SECONDS})
        reply.raise_for_status()
        return JSONResponse({"now": reply.json()["now"], "advanced_seconds": AWAY_SECONDS})

    @router.post("/dev/users/{sub}/enhance")
    async def enhance(sub: str, request: Request) -> JSONResponse:
        keeper = keeper_of(request)
        before = world.emulator.state.stats()["token"]["refresh_token"]
        fetched = picked.get(_sub(sub))
        if fetched is None:
            raise HTTPException(409, "Pick photos first: the job enhances the photos you picked.")
        # Raises MissingScopes (403, with advice) if Photos access was never granted.
        credentials = await keeper.credentials(sub, PHOTOS_SCOPES)
        kept = pictures / "picked" / sub
        originals = [
            Original(o.filename, o.source_id, (kept / Path(o.filename).name).read_bytes())
            for o in fetched.originals
        ]
        try:
            # google-api-python-client blocks, and a refresh hops back onto this loop.
            report = await asyncio.to_thread(
                enhance_and_upload, credentials, photos_discovery, originals
            )
        except Exception as error:  # every job failure becomes one problem document
            return _job_failed(error, "The photo job failed")
        job = secrets.token_hex(8)
        pairs = await asyncio.to_thread(save_pairs, report, pictures / job)
        refreshes = world.emulator.state.stats()["token"]["refresh_token"] - before
        photos: list[dict[str, Any]] = [
            {
                "filename": photo.filename,
                "status": photo.status,
                "change": round(photo.change, 1),
                "before": f"/dev/pictures/{job}/before/{was.name}",
                "after": f"/dev/pictures/{job}/after/{now.name}",
            }
            for photo, (was, now) in zip(report.photos, pairs, strict=True)
        ]
        return JSONResponse(
            {
                "source_album": report.source_album,
                "target_album": report.target_album,
                "created": len(report.created),
                "failed": len(report.failed),
                "batch_calls": report.batch_calls,
                "seconds": round(report.seconds, 2),
                "refreshes": refreshes,
                "saved_in": str(pictures / job),
                "photos": photos,
            }
        )

    @router.get("/dev/pictures/{job}/{kind}/{name}")
    async def picture(job: str, kind: str, name: str) -> FileResponse:
        if not (_JOB.match(job) and kind in ("before", "after") and _PICTURE.match(name)):
            raise HTTPException(404, "No such picture.")
        path = pictures / job / kind / name
        if not path.is_file():
            raise HTTPException(404, "No such picture.")
        return FileResponse(path, media_type="image/jpeg")

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
