"""One app registered at a running emulator, as the keeper, web and life-cycle tests use it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grantkeeper.emulator import EmulatorHandle
from grantkeeper.keeper import Keeper
from grantkeeper.metrics import TimedTransport
from grantkeeper.oauth import OAuthProvider, ProviderOptions, RetryPolicy
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore

OPENID = ["openid", "email", "profile"]
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


@dataclass
class World:
    """A web (server) client, an iOS client and a user at the emulator, and keeper settings."""

    emulator: EmulatorHandle
    settings: Settings
    web_client_id: str
    ios_client_id: str
    email: str
    sub: str

    def code(self, scopes: list[str] | None = None, email: str | None = None, **opts: Any) -> str:
        """A server auth code as GIDSignIn would hand it to the iOS app."""
        return self.emulator.control.server_auth_code(
            self.ios_client_id, self.web_client_id, email or self.email, scopes or OPENID, **opts
        )

    def stats(self) -> dict[str, Any]:
        return self.emulator.control.stats()

    def refreshes(self) -> int:
        return int(self.stats()["token"].get("refresh_token", 0))

    def exchanges(self) -> int:
        return int(self.stats()["token"].get("authorization_code", 0))


def make_world(emulator: EmulatorHandle, tmp_path: Path, **settings: Any) -> World:
    """Reset the emulator and register the app; ``settings`` override the keeper's."""
    control = emulator.control
    control.reset()
    secrets_json = control.create_client("web", redirect_uris=["http://127.0.0.1/"])
    web_client_id = secrets_json["web"]["client_id"]
    ios_client_id = control.create_client("ios")["client_id"]
    user = control.create_user("ada@example.com", name="Ada Lovelace")
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(secrets_json))
    values: dict[str, Any] = {
        "client_secrets_file": secrets_file,
        "issuer": emulator.base_url,
        "allowed_client_ids": [ios_client_id],
        "data_dir": tmp_path / "data",
        **settings,
    }
    return World(
        emulator,
        Settings(**values, _env_file=None),
        web_client_id,
        ios_client_id,
        user["email"],
        user["sub"],
    )


def store_of(keeper: Keeper) -> GrantStore:
    """The store under a keeper: tests look at what the keeper wrote (no public door)."""
    store = keeper._store
    assert store is not None, "the keeper is not open"
    return store


def provider_of(keeper: Keeper) -> OAuthProvider:
    """The keeper's provider client (built on first need)."""
    return keeper._get_provider()


async def no_wait(_: float) -> None:
    """Retry and polling waits pass at once (a real yield, so other tasks run): backoff is not
    what these tests measure, and no test should wait for it."""
    await asyncio.sleep(0)


def quick_provider(settings: Settings, clock: Any) -> OAuthProvider:
    """A provider client whose retries do not sleep (timed for the metrics, as the keeper's
    own provider is)."""
    return OAuthProvider(
        settings,
        clock=clock,
        transport=TimedTransport(None),
        options=ProviderOptions(retry=RetryPolicy(sleep=no_wait)),
    )
