"""A shared cooldown per failing grant: ten callers cost the provider one retry budget."""

from __future__ import annotations

from typing import Any

import pytest

from grantkeeper.errors import ProviderUnavailable
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.events import GrantEvent

from ..app_world import store_of
from .conftest import World

pytestmark = pytest.mark.anyio


async def test_a_failing_grant_cools_down_for_every_caller_and_instance(
    keeper: Keeper, world: World, store_target: Any, store_keyring: Any
) -> None:
    events: list[GrantEvent] = []
    keeper.add_listener(events.append)
    await keeper.sign_in(world.code())
    world.emulator.control.advance_clock(3600)  # the access token is stale: a refresh is due
    world.emulator.control.add_fault("token", status=503, count=None)
    before = world.refreshes()
    answers: list[ProviderUnavailable] = []
    try:
        for _ in range(10):
            with pytest.raises(ProviderUnavailable) as caught:
                await keeper.access_token(world.sub)
            answers.append(caught.value)
        # At most one retry budget reached Google for ten calls.
        assert world.refreshes() - before <= keeper.settings.provider_attempts
        waits = [a.extra["retry_after"] for a in answers]
        assert all(0 < wait <= 30 for wait in waits)
        assert "in a row" in answers[-1].message

        # Another instance on the same store sees the same cooldown: no call to Google.
        other_store = await store_target.open(store_keyring, keeper.clock)
        try:
            async with Keeper(keeper.settings, clock=keeper.clock, store=other_store) as other:
                spent = world.refreshes()
                with pytest.raises(ProviderUnavailable):
                    await other.access_token(world.sub)
                assert world.refreshes() == spent
        finally:
            await other_store.close()

        # Still failing after the cooldown: it doubles.
        world.emulator.control.advance_clock(31)
        with pytest.raises(ProviderUnavailable) as again:
            await keeper.access_token(world.sub)
        assert 30 < again.value.extra["retry_after"] <= 60
        cooldown = await store_of(keeper).get_cooldown(world.sub, world.web_client_id)
        assert cooldown is not None
        assert cooldown.failures == 2
    finally:
        world.emulator.control.clear_faults()

    # A success clears it.
    world.emulator.control.advance_clock(61)
    token = await keeper.access_token(world.sub)
    assert token.refreshed
    assert await store_of(keeper).get_cooldown(world.sub, world.web_client_id) is None
    assert [e.kind for e in events].count("refresh_failing") == 0  # 2 failures < 3


async def test_refresh_failing_is_announced_once_after_repeated_failures(
    keeper: Keeper, world: World
) -> None:
    events: list[GrantEvent] = []
    keeper.add_listener(events.append)
    await keeper.sign_in(world.code())
    world.emulator.control.advance_clock(3600)
    world.emulator.control.add_fault("token", status=500, count=None)
    try:
        for _ in range(4):
            with pytest.raises(ProviderUnavailable):
                await keeper.access_token(world.sub)
            world.emulator.control.advance_clock(1000)  # past any cooldown
    finally:
        world.emulator.control.clear_faults()
    failing = [e for e in events if e.kind == "refresh_failing"]
    assert len(failing) == 1
    assert failing[0].detail["consecutive_failures"] == 3
