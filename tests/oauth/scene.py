"""A provider client wired to the emulator: a web (server) client, an iOS client and a user."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from grantkeeper.clock import ManualClock
from grantkeeper.emulator import EmulatorControl
from grantkeeper.oauth import OAuthProvider, ProviderOptions, RetryPolicy
from grantkeeper.settings import Settings

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SCOPES = ("openid", "email", "profile", DRIVE_APPDATA)


class Sleeps:
    """Records the waits the retry loop asks for; nothing really sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Scene:
    base_url: str
    control: EmulatorControl
    secrets_path: Path
    web_id: str
    web_secret: str
    ios_id: str
    user: dict[str, Any]
    clock: ManualClock
    sleeps: Sleeps

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "client_secrets_file": self.secrets_path,
            "issuer": self.base_url,
            "allowed_client_ids": [self.ios_id],
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def provider(
        self,
        *,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        **settings: Any,
    ) -> OAuthProvider:
        retry = RetryPolicy(attempts=attempts, jitter=0.0, sleep=self.sleeps)
        return OAuthProvider(
            self.settings(**settings),
            clock=self.clock,
            transport=transport,
            options=ProviderOptions(retry=retry),
        )

    def code(self, *, client_id: str | None = None, **opts: Any) -> str:
        """A server auth code as GIDSignIn hands it to the iOS app (aud = web, azp = iOS)."""
        return self.control.server_auth_code(
            client_id or self.ios_id, self.web_id, self.user["email"], SCOPES, **opts
        )


def make_scene(base_url: str, control: EmulatorControl, tmp_path: Path) -> Scene:
    web = control.create_client("web", redirect_uris=["http://localhost:4000/callback"])
    secrets_path = tmp_path / "client_secret_web.json"
    secrets_path.write_text(json.dumps(web), encoding="utf-8")
    ios = control.create_client("ios")
    user = control.create_user("ada@example.com", name="Ada Lovelace", hd="example.com")
    return Scene(
        base_url=base_url,
        control=control,
        secrets_path=secrets_path,
        web_id=web["web"]["client_id"],
        web_secret=web["web"]["client_secret"],
        ios_id=ios["client_id"],
        user=user,
        clock=ManualClock(datetime.now(UTC)),
        sleeps=Sleeps(),
    )
