"""examples/fastapi_app against the emulator, in-process (httpx's ASGI transport): first
sign-in, connect while logged in, an email that collides with a password account, a sub linked
to another user, the app's own session, and the nightly job with googleapiclient."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle
from grantkeeper.keeper import Keeper

from ..app_world import World, make_world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SCOPES = ["openid", "email", "profile", DRIVE_APPDATA]
XRW = {"X-Requested-With": "com.example.app"}

pytestmark = pytest.mark.anyio


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fastapi_example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    return make_world(emulator, tmp_path, encryption_keys=[generate_key("example")])


@pytest.fixture
async def keeper(world: World) -> AsyncIterator[Keeper]:
    async with Keeper(world.settings, clock=world.emulator.state.clock) as opened:
        yield opened


@pytest.fixture
async def app(keeper: Keeper, tmp_path: Path) -> AsyncIterator[Any]:
    made = load("app").create_app(str(tmp_path / "app.sqlite3"), keeper)
    async with made.router.lifespan_context(made):  # what uvicorn runs at start and stop
        yield made


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


async def sign_in(browser: httpx.AsyncClient, world: World) -> httpx.Response:
    code = world.code(SCOPES)
    return await browser.post("/auth/google", json={"code": code}, headers=XRW)


async def test_first_sign_in_creates_the_user_and_the_session(app: Any, world: World) -> None:
    async with client(app) as browser:
        answer = await sign_in(browser, world)
        assert answer.status_code == 200, answer.json()
        assert answer.json()["offline"] is True
        assert "session" in browser.cookies  # the app's own session
        assert (await browser.post("/auth/google", json={"code": "4/x"})).status_code == 403
    async with client(app) as again:  # a returning user: the same account
        assert (await sign_in(again, world)).json()["user_id"] == answer.json()["user_id"]


async def test_an_email_collision_is_refused_until_the_user_connects_while_logged_in(
    app: Any, world: World
) -> None:
    async with client(app) as browser:
        account = {"email": world.email, "password": "correct horse"}
        assert (await browser.post("/register", json=account)).status_code == 201
        refused = await sign_in(browser, world)
        assert refused.status_code == 403
        assert refused.json()["error"] == "sign_in_refused"
        assert "log in with your password" in refused.json()["detail"]

        assert (await browser.post("/login", json=account)).status_code == 200
        connected = await sign_in(browser, world)  # "connect Google" while logged in
        assert connected.status_code == 200, connected.json()
        assert connected.json()["offline"] is True  # the refusal gave back what Google issued


async def test_a_google_account_linked_to_another_user_is_refused(app: Any, world: World) -> None:
    async with client(app) as first:
        assert (await sign_in(first, world)).status_code == 200
    async with client(app) as other:
        bob = {"email": "bob@example.com", "password": "pw"}
        await other.post("/register", json=bob)
        await other.post("/login", json=bob)
        refused = await sign_in(other, world)
        assert refused.status_code == 403
        assert "linked to another user" in refused.json()["detail"]


async def test_the_nightly_job_lists_app_data_through_the_keeper(
    app: Any, world: World, keeper: Keeper, tmp_path: Path
) -> None:
    async with client(app) as browser:
        assert (await sign_in(browser, world)).status_code == 200
    nightly = load("nightly")
    options = {
        "discoveryServiceUrl": world.emulator.base_url
        + "/discovery/v1/apis/{api}/{apiVersion}/rest",
        "static_discovery": False,
        "cache_discovery": False,
    }
    world.emulator.control.advance_clock(2 * 3600)  # the access token expired overnight
    report = await nightly.run(str(tmp_path / "app.sqlite3"), keeper, **options)
    assert report == {world.sub: []}
    assert world.refreshes() == 1
    world.emulator.control.revoke_user(world.sub)
    world.emulator.control.advance_clock(2 * 3600)
    report = await nightly.run(str(tmp_path / "app.sqlite3"), keeper, **options)
    assert report == {world.sub: "grant_revoked"}
