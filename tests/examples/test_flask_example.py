"""examples/flask_app against the emulator: first sign-in, connect while logged in, an email
that collides with a password account, a sub linked to another user, the app's own session,
and the nightly job with googleapiclient."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.keeper.sync import SyncKeeper

from ..app_world import World, make_world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SCOPES = ["openid", "email", "profile", DRIVE_APPDATA]
XRW = {"X-Requested-With": "com.example.app"}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"flask_example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    return make_world(emulator, tmp_path, encryption_keys=[generate_key("example")])


@pytest.fixture
def keeper(world: World) -> Iterator[SyncKeeper]:
    with SyncKeeper(world.settings, clock=world.emulator.state.clock) as opened:
        yield opened


@pytest.fixture
def app(keeper: SyncKeeper, tmp_path: Path) -> Any:
    return load("app").create_app(str(tmp_path / "app.sqlite3"), keeper)


def sign_in(client: Any, world: World, email: str | None = None) -> Any:
    code = world.code(SCOPES, email=email)
    return client.post("/auth/google", json={"code": code}, headers=XRW)


def test_first_sign_in_creates_the_user_and_the_session(app: Any, world: World) -> None:
    client = app.test_client()
    answer = sign_in(client, world)
    assert answer.status_code == 200, answer.json
    assert answer.json["offline"] is True
    with client.session_transaction() as session:
        assert session["user_id"] == answer.json["user_id"]
    again = sign_in(app.test_client(), world)  # a returning user: the same account
    assert again.json["user_id"] == answer.json["user_id"]
    assert client.post("/auth/google", json={"code": "4/x"}).status_code == 403  # no header


def test_an_email_collision_is_refused_until_the_user_connects_while_logged_in(
    app: Any, world: World
) -> None:
    client = app.test_client()
    client.post("/register", json={"email": world.email, "password": "correct horse"})
    refused = sign_in(client, world)
    assert refused.status_code == 403
    assert refused.json["error"] == "sign_in_refused"
    assert "log in with your password" in refused.json["detail"]

    logged_in = client.post("/login", json={"email": world.email, "password": "correct horse"})
    assert logged_in.status_code == 200
    connected = sign_in(client, world)  # "connect Google" while logged in
    assert connected.status_code == 200, connected.json
    assert connected.json["offline"] is True  # the refusal gave back what Google issued


def test_a_google_account_linked_to_another_user_is_refused(app: Any, world: World) -> None:
    first = sign_in(app.test_client(), world)
    assert first.status_code == 200
    other = app.test_client()
    other.post("/register", json={"email": "bob@example.com", "password": "pw"})
    other.post("/login", json={"email": "bob@example.com", "password": "pw"})
    refused = sign_in(other, world)
    assert refused.status_code == 403
    assert "linked to another user" in refused.json["detail"]


def test_the_nightly_job_lists_app_data_through_the_keeper(
    app: Any, world: World, keeper: SyncKeeper, tmp_path: Path
) -> None:
    assert sign_in(app.test_client(), world).status_code == 200
    world.emulator.control.advance_clock(2 * 3600)  # the access token expired overnight
    discovery = world.emulator.base_url + "/discovery/v1/apis/{api}/{apiVersion}/rest"
    report = load("nightly").run(
        str(tmp_path / "app.sqlite3"),
        keeper,
        discoveryServiceUrl=discovery,
        static_discovery=False,
        cache_discovery=False,
    )
    assert report == {world.sub: []}
    assert world.refreshes() == 1
    world.emulator.control.revoke_user(world.sub)
    world.emulator.control.advance_clock(2 * 3600)
    report = load("nightly").run(
        str(tmp_path / "app.sqlite3"),
        keeper,
        discoveryServiceUrl=discovery,
        static_discovery=False,
        cache_discovery=False,
    )
    assert report == {world.sub: "grant_revoked"}
