"""A keeper wired to a real emulator (uvicorn on a free port) and a real store (both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.keeper import Keeper

from ..app_world import DRIVE_APPDATA, OPENID, World, make_world

__all__ = ["DRIVE_APPDATA", "OPENID", "World"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    return make_world(emulator, tmp_path)


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
