"""/readyz's source: a keeper whose issuer does not answer discovery is not ready."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.keeper import Keeper

from .conftest import World

pytestmark = pytest.mark.anyio


async def test_a_wrong_issuer_is_named_by_readiness(
    world: World, store_target: Any, store_keyring: KeyRing
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = world.settings.model_copy(update={"issuer": dead, "provider_attempts": 1})
    store = await store_target.open(store_keyring, world.emulator.state.clock)
    try:
        async with Keeper(settings, store=store) as keeper:
            assert await keeper.readiness() == [
                "issuer_unreachable: OpenID discovery failed (provider_unavailable)"
            ]
        async with Keeper(world.settings, store=store) as keeper:
            assert await keeper.readiness() == []
    finally:
        await store.close()
