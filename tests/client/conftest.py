"""A keeper served over real HTTP (uvicorn on a free port) in front of the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.demo.serving import serve_in_thread
from grantkeeper.emulator import EmulatorHandle
from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import DRIVE_APPDATA, OPENID, World, make_world

SERVICE_KEY = "worker-key-0123456789abcdef"


@dataclass
class Served:
    world: World
    url: str

    def sign_in(self, scopes: list[str] | None = None) -> str:
        """The iOS app signs the user in through the keeper's API; the user's sub."""
        response = httpx.post(
            self.url + "/v1/google/signin",
            json={"code": self.world.code(scopes or [*OPENID, DRIVE_APPDATA])},
            headers={"X-Requested-With": "com.example.photos"},
        )
        assert response.status_code == 200, response.text
        sub: str = response.json()["user"]["sub"]
        return sub


@pytest.fixture
def served(emulator: EmulatorHandle, tmp_path: Path) -> Iterator[Served]:
    world = make_world(
        emulator,
        tmp_path,
        service_api_keys=[SERVICE_KEY],
        encryption_keys=[generate_key()],
        allow_insecure_http=True,
    )
    # The keeper shares the emulator's clock: moving Google's time moves the keeper's.
    keeper = Keeper(world.settings, clock=emulator.state.clock)
    with serve_in_thread(create_app(keeper, owns_keeper=True)) as url:
        yield Served(world, url)
