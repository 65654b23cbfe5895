"""Dev mode: an emulator and an app registered at it."""

from __future__ import annotations

import asyncio
import stat
from datetime import datetime
from pathlib import Path

import pytest

from grantkeeper import Keeper
from grantkeeper.clock import OffsetClock
from grantkeeper.devmode import DevWorld, dev_world
from grantkeeper.emulator import EmulatorConfig
from grantkeeper.errors import GrantkeeperError


def test_dev_mode_client_secret_file_is_private(tmp_path: Path) -> None:
    with dev_world(tmp_path / "dev") as world:
        mode = stat.S_IMODE(world.settings.client_secrets_file.stat().st_mode)  # type: ignore[union-attr]
    assert mode == 0o600


def test_dev_mode_over_https_keeper_signs_in_and_refreshes(tmp_path: Path) -> None:
    """The keeper reaches an HTTPS emulator through the transport dev mode gives it (trusting
    the local CA), with its production code path: discovery, exchange, JWKS, refresh."""
    config = EmulatorConfig(https=True, data_dir=tmp_path / "tls")

    async def story(world: DevWorld) -> None:
        code = world.emulator.control.server_auth_code(
            world.ios_client_id,
            world.web_client_id,
            "erin@example.com",
            scopes=["openid", "email", "https://www.googleapis.com/auth/drive.appdata"],
        )
        async with Keeper(world.settings, transport=world.keeper_transport()) as keeper:
            result = await keeper.sign_in(code)
            first = await keeper.access_token(result.sub)
            fresh = await keeper.access_token(result.sub, rejected=first.token)
        assert fresh.token != first.token
        assert world.emulator.state.lookup_access_token(fresh.token) is not None

    with dev_world(tmp_path / "dev", config) as world:
        assert world.settings.issuer.startswith("https://127.0.0.1:")
        asyncio.run(story(world))


def test_a_keeper_in_another_process_follows_the_emulator_clock(tmp_path: Path) -> None:
    """docs/emulator.md, "Moving time safely": a keeper that cannot share the emulator's clock
    object keeps an OffsetClock and advances it with the emulator's; one on system time refuses
    the ID tokens and says why."""

    async def story(world: DevWorld) -> None:
        def code(email: str) -> str:
            return world.emulator.control.server_auth_code(
                world.ios_client_id, world.web_client_id, email
            )

        moved = world.emulator.control.advance_clock(7200)
        clock = OffsetClock()
        clock.advance(7200)
        assert abs((clock.now() - datetime.fromisoformat(moved)).total_seconds()) < 60
        async with Keeper(world.settings, clock=clock) as following:
            assert (await following.sign_in(code("fern@example.com"))).sub
        async with Keeper(world.settings) as on_system_time:
            with pytest.raises(GrantkeeperError, match="in the future"):
                await on_system_time.sign_in(code("gus@example.com"))

    with dev_world(tmp_path / "dev") as world:
        asyncio.run(story(world))
