"""The grant's life seen by the app: the events listeners get (a failing listener never fails
the operation), why a dead grant died (Google's reauthentication subtypes, no refresh token
ever), and a keeper without client secrets that still reads but cannot sign anyone in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.errors import ConfigurationError, GrantRevoked, InvalidRequest
from grantkeeper.keeper import GrantEvent, Keeper
from grantkeeper.store import GrantStatus

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio

HOUR = 3600


async def test_listeners_hear_every_change_and_a_failing_one_fails_nothing(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[str] = []

    async def recorder(event: GrantEvent) -> None:
        heard.append(event.kind)

    def broken(event: GrantEvent) -> None:
        raise RuntimeError("the app's listener has a bug")

    keeper.add_listener(broken)
    keeper.add_listener(recorder)
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    world.emulator.control.advance_clock(2 * HOUR)
    assert (await keeper.access_token(result.sub)).refreshed
    assert heard == ["signed_in", "refreshed"]  # the broken listener did not stop the next
    assert "event listener failed on signed_in" in caplog.text
    assert "the app's listener has a bug" in caplog.text


async def test_google_asking_for_reauthentication_ends_the_grant_with_that_reason(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    world.emulator.control.advance_clock(2 * HOUR)
    world.emulator.control.add_fault(
        "token",
        status=400,
        body={
            "error": "invalid_grant",
            "error_description": "reauth related error (invalid_rapt)",
            "error_subtype": "invalid_rapt",
        },
        count=1,
    )
    with pytest.raises(GrantRevoked) as caught:
        await keeper.access_token(result.sub)
    assert caught.value.reason == "reauthentication_required"
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    assert (grant.status, grant.status_reason) == (GrantStatus.REVOKED, "reauthentication_required")


async def test_a_grant_that_never_had_offline_access_cannot_be_refreshed(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code(offline=False))
    with pytest.raises(GrantRevoked) as caught:
        await keeper.access_token(result.sub)
    assert caught.value.reason == "no_refresh_token"
    assert "never granted offline access" in str(caught.value)
    assert world.refreshes() == 0


async def test_a_code_holding_a_lone_surrogate_never_reaches_google(
    keeper: Keeper, world: World
) -> None:
    with pytest.raises(InvalidRequest, match="lone surrogate"):
        await keeper.sign_in("4/0abc\ud800def")
    assert world.exchanges() == 0


async def test_a_keeper_without_client_secrets_reads_but_cannot_sign_in(
    world: World, store_target: Any, store_keyring: KeyRing, tmp_path: Path
) -> None:
    store = await store_target.open(store_keyring, world.emulator.state.clock)
    settings = world.settings.model_copy(update={"client_secrets_file": None})
    try:
        async with Keeper(settings, store=store) as keeper:
            assert await keeper.users() == []
            with pytest.raises(ConfigurationError):
                await keeper.sign_in(world.code())
        assert world.exchanges() == 0
    finally:
        await store.close()


async def test_the_keeper_logs_what_it_drops_never_what_it_holds(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="grantkeeper")
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    world.emulator.control.advance_clock(2 * HOUR)
    token = await keeper.access_token(result.sub)
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    assert grant.refresh_token is not None
    assert token.token not in caplog.text
    assert grant.refresh_token not in caplog.text


async def test_a_refresh_for_a_caller_is_stored_with_its_hand_out_and_audit(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    world.emulator.control.advance_clock(2 * HOUR)
    clock = world.emulator.state.clock
    before = clock.now()
    token = await keeper.access_token(result.sub, caller="nightly-backup")
    assert token.refreshed
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    # Idle time counts from the hand-out (the emulator's clock runs: no exact instant).
    assert grant.last_used_at is not None
    assert grant.last_refreshed_at is not None
    assert before <= grant.last_used_at <= clock.now()
    assert before <= grant.last_refreshed_at <= clock.now()
    [refresh] = await store_of(keeper).list_audit(result.sub, kind="refresh")
    assert (refresh.outcome, refresh.detail) == ("ok", {"caller": "nightly-backup"})


async def test_delivering_webhooks_without_a_webhook_says_what_to_set(keeper: Keeper) -> None:
    assert await keeper.start_webhook_delivery() is False  # nothing to deliver: not an error
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_WEBHOOK_URL"):
        await keeper.deliver_webhooks()
