"""Keeper.credentials with google-api-python-client: scripts and async code, refresh on expiry
and on a 401, persisted through the keeper."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from googleapiclient.discovery import build

from grantkeeper.crypto import generate_key
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.sync import SyncKeeper

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

HOUR = 3600


def drive(world: World, credentials: Any) -> Any:
    return build(
        "drive",
        "v3",
        credentials=credentials,
        discoveryServiceUrl=world.emulator.base_url + "/discovery/v1/apis/{api}/{apiVersion}/rest",
        static_discovery=False,
        cache_discovery=False,
    )


def test_a_script_lists_app_data_after_the_token_expired(world: World, store_target: Any) -> None:
    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
        }
    )
    clock = world.emulator.state.clock
    with SyncKeeper(settings, clock=clock) as keeper:
        result = keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
        credentials = keeper.credentials(result.sub)
        service = drive(world, credentials)
        folder = service.files().get(fileId="appfolder", fields="id").execute()
        assert folder["id"]
        first_token = credentials.token

        # The user is away; time passes at Google and for the keeper.
        world.emulator.control.advance_clock(2 * HOUR)
        listing = service.files().list(spaces="appDataFolder", fields="files(id,name)").execute()
        assert listing["files"] == []
        assert credentials.token != first_token
        assert credentials.refresh_token is None  # the refresh token never leaves the keeper
        stored = keeper.access_token(result.sub)
        assert stored.token == credentials.token
        assert not stored.refreshed
        assert world.refreshes() == 1
        service.close()


@pytest.mark.anyio
async def test_async_code_uses_credentials_from_a_worker_thread(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    credentials = await keeper.credentials(result.sub)
    service = await asyncio.to_thread(drive, world, credentials)
    world.emulator.control.advance_clock(2 * HOUR)

    def create_and_list() -> list[dict[str, Any]]:
        service.files().create(
            body={"name": "settings.json", "parents": ["appDataFolder"]}, fields="id"
        ).execute()
        found = service.files().list(spaces="appDataFolder", fields="files(id,name)").execute()
        files: list[dict[str, Any]] = found["files"]
        return files

    files = await asyncio.to_thread(create_and_list)
    service.close()
    assert [f["name"] for f in files] == ["settings.json"]
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    assert grant.access_token == credentials.token
    assert world.refreshes() == 1


@pytest.mark.anyio
async def test_refreshing_on_the_event_loop_thread_is_a_clear_error(
    keeper: Keeper, world: World
) -> None:
    from google.auth.exceptions import RefreshError

    result = await keeper.sign_in(world.code())
    credentials = await keeper.credentials(result.sub)
    with pytest.raises(RefreshError, match="worker thread"):
        credentials.refresh(None)


def test_a_revocation_inside_googleapiclient_is_both_grant_revoked_and_refresh_error(
    world: World, store_target: Any
) -> None:
    from google.auth.exceptions import RefreshError

    from grantkeeper.errors import GrantkeeperError, GrantRevoked

    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
        }
    )
    with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:
        result = keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
        service = drive(world, keeper.credentials(result.sub))
        world.emulator.control.revoke_user(result.sub)  # the user removed the app at Google
        world.emulator.control.advance_clock(2 * HOUR)
        request = service.files().list(spaces="appDataFolder")
        with pytest.raises(GrantRevoked) as typed:
            request.execute()
        error = typed.value
        assert isinstance(error, RefreshError)  # google-auth's except clause works too
        assert isinstance(error, GrantkeeperError)
        assert error.code == "grant_revoked"
        assert error.reason == "revoked"
        assert error.retryable is False
        assert "revoked" in str(error)
        with pytest.raises(RefreshError):
            request.execute()
        service.close()


def test_threads_meeting_one_401_share_one_refresh(world: World, store_target: Any) -> None:
    import threading

    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
        }
    )
    with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:
        result = keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
        credentials = keeper.credentials(result.sub)
        world.emulator.control.advance_clock(2 * HOUR)  # Google refuses the token now
        failures: list[BaseException] = []

        def work() -> None:
            try:
                service = drive(world, credentials)
                service.files().get(fileId="appfolder").execute()
                service.close()
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert world.refreshes() == 1
