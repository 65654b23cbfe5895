"""Keeper.disconnect: revocation at the provider, pending when it is down, forgetting."""

from __future__ import annotations

import pytest

from grantkeeper.errors import GrantRevoked, UnknownUser
from grantkeeper.keeper import Keeper
from grantkeeper.store import GrantStatus

from ..app_world import store_of
from .conftest import World

pytestmark = pytest.mark.anyio


async def test_disconnect_with_the_provider_down_is_pending_then_the_sweep_forgets(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code())
    world.emulator.control.add_fault("revoke", status=503, count=None)
    try:
        outcome = await keeper.disconnect(result.sub, forget=True)
        # One short attempt: the app's answer does not wait on Google's retries.
        assert world.stats().get("revoke", 0) == 1
    finally:
        world.emulator.control.clear_faults()
    assert outcome.pending
    assert not outcome.forgotten
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    assert grant.status == GrantStatus.PENDING_REVOCATION
    with pytest.raises(GrantRevoked):
        await keeper.access_token(result.sub)

    report = await keeper.sweep()
    assert "revocation_completed" in report.actions
    assert await store_of(keeper).get_user(result.sub) is None
    assert world.stats()["live_refresh_tokens_per_user"].get(result.sub, 0) == 0
    with pytest.raises(UnknownUser):
        await keeper.access_token(result.sub)
    kinds = [event.kind for event in await store_of(keeper).list_audit(result.sub)]
    assert "forget" in kinds


async def test_disconnect_is_idempotent_and_unknown_users_are_clear(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code())
    first = await keeper.disconnect(result.sub)
    assert first.revoked_at_provider
    again = await keeper.disconnect(result.sub)
    assert not again.revoked_at_provider
    assert not again.pending
    with pytest.raises(UnknownUser):
        await keeper.disconnect("000000000000000000000")
    assert (await keeper.disconnect("000000000000000000000", forget=True)).grants == 0
