"""SyncKeeper, the keeper for synchronous code: forced refreshes, disconnects, closing (twice, at
interpreter exit, with credentials still around) and a start that fails without leaving its
loop thread behind."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.exceptions import RefreshError

from grantkeeper.crypto import generate_key
from grantkeeper.errors import ConfigurationError, GrantkeeperError, GrantRevoked
from grantkeeper.keeper import AccessToken, sync
from grantkeeper.keeper import credentials as keeper_credentials
from grantkeeper.keeper.loop_thread import LoopThread
from grantkeeper.keeper.sync import SyncKeeper
from grantkeeper.settings import Settings

from .conftest import DRIVE_APPDATA, OPENID, World


def _settings(world: World, store_target: Any) -> Settings:
    return world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
        }
    )


def _loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "grantkeeper-sync"}


def test_a_forced_refresh_replaces_the_token_and_a_disconnect_ends_the_grant(
    world: World, store_target: Any
) -> None:
    with SyncKeeper(_settings(world, store_target), clock=world.emulator.state.clock) as keeper:
        result = keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
        first = keeper.access_token(result.sub)
        forced = keeper.refresh(result.sub)
        assert forced.refreshed
        assert forced.token != first.token
        assert world.refreshes() == 1
        # A worker whose token an API refused gets the newer one without another refresh.
        assert keeper.refresh(result.sub, rejected=first.token).token == forced.token
        assert world.refreshes() == 1

        outcome = keeper.disconnect(result.sub, forget=True)
        assert outcome.revoked_at_provider
        assert outcome.forgotten
        with pytest.raises(GrantkeeperError):
            keeper.access_token(result.sub)


def test_closing_twice_is_harmless_and_credentials_outliving_the_keeper_say_so(
    world: World, store_target: Any
) -> None:
    before = _loop_threads()
    keeper = SyncKeeper(_settings(world, store_target), clock=world.emulator.state.clock)
    credentials = keeper.credentials(keeper.sign_in(world.code()).sub)
    loop_thread = keeper._thread
    keeper.close()
    keeper.close()
    assert loop_thread.loop.is_closed()
    assert _loop_threads() == before
    with pytest.raises(RefreshError, match="keeper behind these credentials is closed"):
        credentials.refresh(None)


def test_keepers_left_open_are_closed_at_interpreter_exit(world: World, store_target: Any) -> None:
    keeper = SyncKeeper(_settings(world, store_target), clock=world.emulator.state.clock)
    loop_thread = keeper._thread
    sync._close_open_keepers()  # what atexit runs
    assert loop_thread.loop.is_closed()
    assert not loop_thread.thread.is_alive()
    keeper.close()  # the application's own close afterwards is harmless


def test_a_keeper_that_cannot_open_its_store_leaves_no_thread_behind(
    world: World, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    settings = world.settings.model_copy(
        update={"database_url": f"sqlite:///{blocked / 'grants.sqlite3'}"}
    )
    before = _loop_threads()
    with pytest.raises(ConfigurationError, match=r"directory .*a-file cannot be created"):
        SyncKeeper(settings, clock=world.emulator.state.clock)
    assert _loop_threads() == before


def test_credentials_whose_keeper_does_not_answer_in_time_fail_retryably(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keeper_credentials, "_WAIT_SECONDS", 0.05)
    loop_thread = LoopThread()
    cancelled = threading.Event()
    now = world.emulator.state.clock.now()

    async def never(rejected: str | None) -> AccessToken:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    expired = now - timedelta(seconds=1)
    token = AccessToken(token="expired", expires_at=expired, scopes=frozenset(), sub="s")
    credentials = keeper_credentials.KeeperCredentials(never, loop_thread.loop, token)
    try:
        with pytest.raises(RefreshError, match="did not produce a token in time") as failed:
            credentials.refresh(None)
        assert failed.value.retryable
        assert cancelled.wait(5)  # the keeper's call does not run on forever
        assert credentials.token == "expired"
    finally:
        loop_thread.stop()


def test_a_revoked_grant_is_grant_revoked_through_the_sync_keeper(
    world: World, store_target: Any
) -> None:
    with SyncKeeper(_settings(world, store_target), clock=world.emulator.state.clock) as keeper:
        result = keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
        world.emulator.control.revoke_user(result.sub)
        with pytest.raises(GrantRevoked):
            keeper.refresh(result.sub)
