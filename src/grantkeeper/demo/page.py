"""The dev-mode page at ``/`` (``grantkeeper serve --emulator``): Sign in with Google in a real
browser, then run the offline photo job for the signed-in user and see before and after.

The browser runs the authorization-code flow against the provider's consent page (found by
OpenID discovery, so the emulator here): ``access_type=offline``, incremental scopes
(``include_granted_scopes=true``), a random ``state`` checked on return, and a redirect back to
this page. The page then POSTs the code to ``/v1/google/signin`` with ``X-Requested-With`` and
``platform: "web"``; the keeper redeems it with ``GRANTKEEPER_WEB_REDIRECT_URI`` (this page's
URL), as Google requires for redirect-flow codes.

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
from grantkeeper.demo.photo_job import PHOTOS_SCOPES, enhance_inbox, save_pairs
from grantkeeper.devmode import DevWorld
from grantkeeper.errors import UnknownUser
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.results import grant_json, user_json
from grantkeeper.web.guards import require_requested_with
from grantkeeper.web.problems import PROBLEM_JSON

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SIGN_IN_SCOPES = ("openid", "email", "profile", DRIVE_APPDATA)
SAMPLE_PICTURES = 3
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


def _job_failed(error: BaseException) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": "The photo job failed",
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
        photos_scopes=PHOTOS_SCOPES,
    )
    emulator_url = world.emulator.base_url
    photos_discovery = emulator_url + "/discovery/v1/apis/photoslibrary/v1/rest"
    pictures = settings.data_dir / "page-photos"
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
        user = await keeper.store.get_user(_sub(sub))
        if user is None:
            raise UnknownUser(f"No user {sub} is stored.")
        grants = await keeper.store.list_grants(sub=sub)
        body = {
            "user": user_json(user),
            "grants": [grant_json(g) for g in grants],
            "now": keeper.clock.now().isoformat().replace("+00:00", "Z"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.post("/dev/users/{sub}/sample-pictures")
    async def sample_pictures(sub: str) -> JSONResponse:
        async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as http:
            reply = await http.post(
                f"/emulator/users/{_sub(sub)}/photos",
                json={"client_id": world.web_client_id, "count": SAMPLE_PICTURES},
            )
        if reply.status_code != 201:
            raise HTTPException(404, "The emulator does not know this user.")
        album = reply.json()["album"]
        return JSONResponse({"album": album["title"], "count": album.get("mediaItemsCount")})

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
        # Raises MissingScopes (403, with advice) if Photos access was never granted.
        credentials = await keeper.credentials(_sub(sub), PHOTOS_SCOPES)
        try:
            # google-api-python-client blocks, and a refresh hops back onto this loop.
            report = await asyncio.to_thread(enhance_inbox, credentials, photos_discovery)
        except Exception as error:  # every job failure becomes one problem document
            return _job_failed(error)
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
