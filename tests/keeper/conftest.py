"""A keeper wired to a real emulator (uvicorn on a free port) and a real store (both backends)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings

OPENID = ["openid", "email", "profile"]
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@dataclass
class World:
    """One app's setup at the emulator: a web (server) client, an iOS client, a user."""

    emulator: EmulatorHandle
    settings: Settings
    web_client_id: str
    ios_client_id: str
    email: str
    sub: str

    def code(self, scopes: list[str] | None = None, **opts: Any) -> str:
        """A server auth code as GIDSignIn would hand it to the iOS app."""
        return self.emulator.control.server_auth_code(
            self.ios_client_id, self.web_client_id, self.email, scopes or OPENID, **opts
        )

    def stats(self) -> dict[str, Any]:
        return self.emulator.control.stats()

    def refreshes(self) -> int:
        return int(self.stats()["token"].get("refresh_token", 0))

    def exchanges(self) -> int:
        return int(self.stats()["token"].get("authorization_code", 0))


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    control = emulator.control
    control.reset()
    secrets_json = control.create_client("web", redirect_uris=["http://127.0.0.1/"])
    web_client_id = secrets_json["web"]["client_id"]
    ios_client_id = control.create_client("ios")["client_id"]
    user = control.create_user("ada@example.com", name="Ada Lovelace")
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(secrets_json))
    settings = Settings(
        client_secrets_file=secrets_file,
        issuer=emulator.base_url,
        allowed_client_ids=[ios_client_id],
        data_dir=tmp_path / "data",
        _env_file=None,  # type: ignore[call-arg]
    )
    return World(emulator, settings, web_client_id, ios_client_id, user["email"], user["sub"])


@pytest.fixture
async def keeper(
    anyio_backend: str, world: World, store_target: Any, store_keyring: KeyRing
) -> AsyncIterator[Keeper]:
    """A keeper on the store under test, sharing the emulator's clock (time moves for both)."""
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)  # type: ignore[arg-type]
    try:
        async with Keeper(world.settings, clock=clock, store=store) as opened:
            yield opened
    finally:
        await store.close()
