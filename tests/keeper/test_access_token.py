"""Offline access: fresh tokens on demand, one refresh per grant, the grant's death and recovery."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from grantkeeper.errors import GrantRevoked, MissingScopes, ProviderUnavailable, UnknownUser
from grantkeeper.keeper import Keeper
from grantkeeper.store import GrantStatus

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio

HOUR = 3600


async def signed_in(keeper: Keeper, world: World, scopes: list[str] | None = None) -> str:
    result = await keeper.sign_in(world.code(scopes))
    return result.sub


async def test_a_fresh_token_is_reused_without_calling_the_provider(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    stored = await store_of(keeper).get_grant(sub)
    assert stored is not None
    token = await keeper.access_token(sub)
    assert token.token == stored.access_token
    assert not token.refreshed
    assert world.refreshes() == 0
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.last_used_at is not None


async def test_an_expiring_token_is_refreshed_and_stored(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world)
    before = await store_of(keeper).get_grant(sub)
    assert before is not None
    # Inside the 300 s margin: still valid at Google, but too close to expiry to hand out.
    world.emulator.control.advance_clock(3599 - 200)
    token = await keeper.access_token(sub)
    assert token.refreshed
    assert token.token != before.access_token
    assert token.token.startswith("ya29.")
    after = await store_of(keeper).get_grant(sub)
    assert after is not None
    assert after.access_token == token.token
    assert after.last_refreshed_at is not None
    assert after.version > before.version
    assert world.refreshes() == 1
    again = await keeper.access_token(sub)
    assert again.token == token.token
    assert world.refreshes() == 1


async def test_one_hundred_concurrent_callers_cause_one_refresh(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    tokens: list[str] = []

    async def ask() -> None:
        tokens.append((await keeper.access_token(sub)).token)

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(ask)
    assert len(tokens) == 100
    assert len(set(tokens)) == 1
    assert world.refreshes() == 1


async def test_unknown_user(keeper: Keeper, world: World) -> None:
    with pytest.raises(UnknownUser):
        await keeper.access_token("123456789012345678901")


async def test_a_scope_the_grant_lacks_is_missing_scopes(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world)
    with pytest.raises(MissingScopes) as caught:
        await keeper.access_token(sub, [DRIVE_APPDATA, "email"])
    assert caught.value.missing == [DRIVE_APPDATA]
    assert "incremental" in caught.value.advice
    # Short forms are normalised the way Google names them.
    assert (await keeper.access_token(sub, ["email", "profile", "openid"])).token


async def test_user_revokes_then_signs_in_again(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.revoke_user(sub)
    world.emulator.control.advance_clock(2 * HOUR)
    with pytest.raises(GrantRevoked) as caught:
        await keeper.access_token(sub)
    assert caught.value.reason == "revoked"
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.REVOKED
    assert grant.status_reason == "revoked"
    assert grant.status_changed_at is not None
    # Stored: a second call does not ask the provider again.
    refreshes = world.refreshes()
    with pytest.raises(GrantRevoked):
        await keeper.access_token(sub)
    assert world.refreshes() == refreshes
    # The user comes back: consent again gives a new refresh token and the grant recovers.
    result = await keeper.sign_in(world.code(prompt="consent"))
    assert result.grant["offline"] is True
    token = await keeper.access_token(sub)
    assert token.token


async def test_a_time_limited_grant_dies_with_its_reason(keeper: Keeper, world: World) -> None:
    result = await keeper.sign_in(world.code(time_limited_seconds=2 * 86400))
    assert result.grant["refresh_token_expires_at"] is not None
    world.emulator.control.advance_clock(3 * 86400)
    with pytest.raises(GrantRevoked) as caught:
        await keeper.access_token(result.sub)
    assert caught.value.reason == "time_limited_access_expired"


async def test_an_idle_grant_dies_as_idle(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(190 * 86400)
    with pytest.raises(GrantRevoked) as caught:
        await keeper.access_token(sub)
    assert caught.value.reason == "idle_expired"


async def test_provider_outage_is_retried_then_unavailable_and_the_grant_survives(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    world.emulator.control.add_fault("token", status=503, count=None)
    try:
        with pytest.raises(ProviderUnavailable):
            await keeper.access_token(sub)
        assert world.refreshes() >= 2  # retried with backoff before giving up
    finally:
        world.emulator.control.clear_faults()
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.ACTIVE
    assert grant.lease_owner is None
    world.emulator.control.advance_clock(31)  # past the grant's refresh cooldown
    token = await keeper.access_token(sub)
    assert token.refreshed


async def test_a_rejected_token_is_never_handed_out_again(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world)
    first = await keeper.access_token(sub)
    second = await keeper.access_token(sub, rejected=first.token)
    assert second.token != first.token
    assert second.refreshed
    # A caller whose rejected token was already replaced gets the replacement, no new refresh.
    third = await keeper.access_token(sub, rejected=first.token)
    assert third.token == second.token
    assert world.refreshes() == 1


async def test_scopes_with_drive(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world, [*OPENID, DRIVE_APPDATA])
    token = await keeper.access_token(sub, [DRIVE_APPDATA])
    assert DRIVE_APPDATA in token.scopes


async def test_a_scope_given_as_one_string(keeper: Keeper, world: World) -> None:
    sub = await signed_in(keeper, world, [*OPENID, DRIVE_APPDATA])
    assert (await keeper.access_token(sub, DRIVE_APPDATA)).token
    assert (await keeper.access_token(sub, f"email {DRIVE_APPDATA}")).token
    with pytest.raises(MissingScopes) as caught:
        await keeper.access_token(sub, "https://www.googleapis.com/auth/gmail.readonly")
    assert caught.value.missing == ["https://www.googleapis.com/auth/gmail.readonly"]


async def test_callers_queued_behind_a_failed_refresh_share_its_failure(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    # Slow answers: the retries do not sleep here, so the failing refresh must last long enough
    # for all twenty callers to queue behind it.
    world.emulator.control.add_fault("token", status=503, count=None, delay_ms=400)
    failures: list[str] = []

    async def ask() -> None:
        try:
            await keeper.access_token(sub)
        except ProviderUnavailable as error:
            failures.append(error.code)

    try:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(ask)
    finally:
        world.emulator.control.clear_faults()
    assert failures == ["provider_unavailable"] * 20
    # One refresh's retry budget, not twenty.
    assert world.refreshes() == keeper.settings.provider_attempts
    world.emulator.control.advance_clock(31)  # past the grant's refresh cooldown
    assert (await keeper.access_token(sub)).refreshed


async def test_a_slow_provider_does_not_let_a_second_instance_refresh_too(
    keeper: Keeper, world: World, store_target: Any, store_keyring: Any
) -> None:
    """The lease is kept alive while the provider call runs longer than the lease TTL."""
    from grantkeeper.keeper import Keeper as KeeperClass

    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    # A short lease (1.2 s, extended every 0.4 s) and a provider twice as slow. Shorter leases
    # make the test measure the machine: under a loaded test run the loop can stall past a
    # 0.3 s lease before its heartbeat writes (the lease is lost, a second refresh follows).
    world.emulator.control.add_fault("token", delay_ms=2500, count=1)
    short_lease = keeper.settings.model_copy(update={"refresh_lease_seconds": 1.2})
    clock = world.emulator.state.clock
    first_store = await store_target.open(store_keyring, clock)
    second_store = await store_target.open(store_keyring, clock)
    try:
        async with (
            KeeperClass(short_lease, clock=clock, store=first_store) as first,
            KeeperClass(short_lease, clock=clock, store=second_store) as second,
        ):
            tokens: list[str] = []

            async def ask(which: KeeperClass, delay: float) -> None:
                await anyio.sleep(delay)
                tokens.append((await which.access_token(sub)).token)

            async with anyio.create_task_group() as group:
                group.start_soon(ask, first, 0.0)
                group.start_soon(ask, second, 1.6)  # well past the 1.2 s lease TTL
    finally:
        await first_store.close()
        await second_store.close()
    assert len(set(tokens)) == 1
    assert world.refreshes() == 1
    # The heartbeat took the lease again while the provider was slow; it is let go after.
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.lease_owner is None


async def test_a_refresh_for_a_service_key_is_one_write_that_audits_and_frees_the_lease(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    token = await keeper.access_token(sub, caller="nightly-job")
    assert token.refreshed
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.lease_owner is None
    assert grant.lease_expires_at is None
    events = await store_of(keeper).list_audit(sub, limit=10)
    newest = {(e.kind, e.outcome): e for e in events}
    assert newest[("refresh", "ok")].detail == {"caller": "nightly-job"}
    handed = newest[("token", "refreshed")]
    assert handed.detail == {"caller": "nightly-job", "scopes": [], "forced": False}
    assert handed.at == newest[("refresh", "ok")].at  # the same transaction
    # A read that needs no refresh is its own hand-out.
    again = await keeper.access_token(sub, caller="nightly-job")
    assert not again.refreshed
    kinds = [(e.kind, e.outcome) for e in await store_of(keeper).list_audit(sub, limit=10)]
    assert kinds.count(("token", "ok")) == 1
    assert kinds.count(("token", "refreshed")) == 1


async def test_every_caller_sharing_one_refresh_has_its_hand_out_audited(
    keeper: Keeper, world: World
) -> None:
    sub = await signed_in(keeper, world)
    world.emulator.control.advance_clock(2 * HOUR)
    world.emulator.control.update_settings(response_delay_ms=200)
    try:
        tokens: list[str] = []

        async def ask(n: int) -> None:
            tokens.append((await keeper.access_token(sub, caller=f"worker-{n}")).token)

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(ask, n)
    finally:
        world.emulator.control.update_settings(response_delay_ms=0)
    assert len(set(tokens)) == 1
    assert world.refreshes() == 1
    handed = [e for e in await store_of(keeper).list_audit(sub, limit=50) if e.kind == "token"]
    assert sorted(e.detail["caller"] for e in handed) == sorted(f"worker-{n}" for n in range(10))
    assert [e.outcome for e in handed].count("refreshed") == 1
