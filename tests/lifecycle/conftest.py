"""A keeper wired to a real emulator (uvicorn on a free port) and a real store (both backends),
as the life-cycle chores (sweep, disconnect, RISC delivery over HTTP) meet them."""

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
from grantkeeper.oauth.provider import OAuthProvider, ProviderOptions
from grantkeeper.oauth.retry import RetryPolicy
from grantkeeper.settings import Settings

OPENID = ["openid", "email", "profile"]
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@dataclass
class World:
    """One app at the emulator: a web (server) client, an iOS client, a user."""

    emulator: EmulatorHandle
    settings: Settings
    secrets_file: Path
    web_client_id: str
    ios_client_id: str
    email: str
    sub: str

    def code(self, scopes: list[str] | None = None, email: str | None = None, **opts: Any) -> str:
        return self.emulator.control.server_auth_code(
            self.ios_client_id, self.web_client_id, email or self.email, scopes or OPENID, **opts
        )

    def stats(self) -> dict[str, Any]:
        return self.emulator.control.stats()


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    control = emulator.control
    control.reset()
    secrets_json = control.create_client("web")
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
        allow_insecure_http=True,
        _env_file=None,  # type: ignore[call-arg]
    )
    return World(
        emulator, settings, secrets_file, web_client_id, ios_client_id, user["email"], user["sub"]
    )


async def _no_sleep(_: float) -> None:
    """Retry waits pass instantly: the provider's backoff is not what these tests measure."""


def quick_provider(settings: Settings, clock: Any) -> OAuthProvider:
    return OAuthProvider(
        settings, clock=clock, options=ProviderOptions(retry=RetryPolicy(sleep=_no_sleep))
    )


@pytest.fixture
async def keeper(
    anyio_backend: str, world: World, store_target: Any, store_keyring: KeyRing
) -> AsyncIterator[Keeper]:
    """A keeper on the store under test, sharing the emulator's clock (time moves for both)."""
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    provider = quick_provider(world.settings, clock)
    try:
        async with Keeper(world.settings, clock=clock, store=store, provider=provider) as opened:
            yield opened
    finally:
        await provider.aclose()
        await store.close()
