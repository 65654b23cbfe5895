"""A keeper wired to a real emulator (uvicorn on a free port) and a real store (both backends),
as the life-cycle chores (sweep, disconnect, RISC delivery over HTTP) meet them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.keeper import Keeper
from grantkeeper.oauth.provider import OAuthProvider, ProviderOptions
from grantkeeper.oauth.retry import RetryPolicy
from grantkeeper.settings import Settings

from ..app_world import DRIVE_APPDATA, OPENID, World, make_world

__all__ = ["DRIVE_APPDATA", "OPENID", "World", "quick_provider"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    # The life-cycle tests also serve the keeper over plain HTTP on loopback.
    return make_world(emulator, tmp_path, allow_insecure_http=True)


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
