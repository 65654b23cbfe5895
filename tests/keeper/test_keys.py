"""Encryption keys through the keeper: which key id holds how many stored tokens, rotating them
under a new primary while they stay usable, and a ring that lost a key is named by readiness
instead of failing at the first refresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.errors import TokenDecryptionError
from grantkeeper.keeper import Keeper

from ..app_world import no_wait, quick_provider
from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio

OLD = generate_key("old")
NEW = generate_key("new")
LOST = generate_key("lost")


@asynccontextmanager
async def keeper_with(ring: list[str], world: World, store_target: Any) -> AsyncIterator[Keeper]:
    clock = world.emulator.state.clock
    store = await store_target.open(KeyRing.from_strings(ring), clock)
    provider = quick_provider(world.settings, clock)
    try:
        async with Keeper(
            world.settings, clock=clock, store=store, provider=provider, sleep=no_wait
        ) as keeper:
            yield keeper
    finally:
        await provider.aclose()
        await store.close()


async def test_rotating_moves_every_token_under_the_new_primary_and_they_stay_usable(
    world: World, store_target: Any
) -> None:
    async with keeper_with([OLD], world, store_target) as old:
        await old.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    async with keeper_with([NEW, OLD], world, store_target) as keeper:
        before = await keeper.key_status()
        assert before.to_json() == {
            "primary": "new",
            "ring": ["new", "old"],
            "values_by_kid": {"old": 2},  # the refresh and the access token
            "stale": 2,
            "unknown": [],
            "retirable": [],
        }
        progress: list[int] = []
        report = await keeper.rotate_keys(batch_size=1, on_progress=progress.append)
        assert (report.primary, report.rewritten, report.remaining) == ("new", 2, 0)
        assert sum(progress) == 2
        after = await keeper.key_status()
        assert after.values_by_kid == {"new": 2}
        assert after.retirable == ["old"]
        assert [e.event.outcome for e in await keeper.audit(kind="key_rotation")] == [
            "completed",
            "started",
        ]
        with pytest.raises(ValueError, match="batch_size"):
            await keeper.rotate_keys(batch_size=0)
    async with keeper_with([NEW], world, store_target) as retired:  # the old key left the ring
        world.emulator.control.advance_clock(2 * 3600)
        assert (await retired.access_token(world.sub, [DRIVE_APPDATA])).refreshed
        assert await retired.readiness() == []


async def test_a_ring_without_the_key_of_stored_tokens_is_not_ready_and_says_which(
    world: World, store_target: Any
) -> None:
    async with keeper_with([LOST], world, store_target) as old:
        await old.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    async with keeper_with([NEW], world, store_target) as keeper:
        problems = await keeper.readiness()
        assert problems == [
            "token_undecryptable: 2 stored token(s) were encrypted with key id 'lost', which "
            "GRANTKEEPER_ENCRYPTION_KEYS does not hold"
        ]
        assert (await keeper.key_status()).unknown == ["lost"]
        with pytest.raises(TokenDecryptionError):
            await keeper.rotate_keys()
