"""Retries against emulator faults over real HTTP; waits are recorded, never slept."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from grantkeeper.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from grantkeeper.errors import InvalidCode, ProviderTimeout, ProviderUnavailable, SignInIncomplete

from .scene import Scene, make_scene

pytestmark = pytest.mark.anyio


@pytest.fixture
def scene(emulator: EmulatorHandle, tmp_path: Path) -> Scene:
    return make_scene(emulator.base_url, emulator.control, tmp_path)


async def signed_in_refresh_token(scene: Scene) -> str:
    async with scene.provider() as provider:
        tokens = await provider.exchange_code(scene.code(), "ios")
    assert tokens.refresh_token is not None
    return tokens.refresh_token


def token_calls(scene: Scene, grant_type: str) -> int:
    count: int = scene.control.stats()["token"][grant_type]
    return count


async def test_refresh_retries_three_500s_then_succeeds(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault("token", status=500, body={"error": "internal_failure"}, count=3)
    async with scene.provider(attempts=4) as provider:
        tokens = await provider.refresh(refresh_token)
    assert tokens.access_token
    assert token_calls(scene, "refresh_token") == 4
    assert scene.sleeps.waits == [0.5, 1.0, 2.0]  # exponential backoff (jitter off here)


async def test_refresh_gives_up_after_the_budget(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault("token", status=503, count=None)
    async with scene.provider(attempts=3) as provider:
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.refresh(refresh_token)
    assert type(caught.value) is ProviderUnavailable
    assert caught.value.retryable
    assert "HTTP 503" in str(caught.value)
    assert token_calls(scene, "refresh_token") == 3


async def test_429_retry_after_is_honoured(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault(
        "token", status=429, headers={"Retry-After": "7"}, body={"error": "rate_limit_exceeded"}
    )
    async with scene.provider() as provider:
        await provider.refresh(refresh_token)
    assert scene.sleeps.waits == [7.0]
    assert token_calls(scene, "refresh_token") == 2


async def test_a_retry_after_beyond_the_cap_is_not_waited_for(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault("token", status=503, headers={"Retry-After": "3600"})
    async with scene.provider() as provider:
        with pytest.raises(ProviderUnavailable):
            await provider.refresh(refresh_token)
    assert scene.sleeps.waits == []
    assert token_calls(scene, "refresh_token") == 1


async def test_dropped_connection_on_refresh_is_retried(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault("token", drop_connection=True)
    async with scene.provider() as provider:
        assert (await provider.refresh(refresh_token)).access_token
    assert token_calls(scene, "refresh_token") == 2


async def test_code_exchange_is_not_retried_when_the_code_may_be_spent(scene: Scene) -> None:
    # A dropped connection or a 500 may hide a redeemed code: one attempt only.
    async with scene.provider() as provider:
        scene.control.add_fault("token", drop_connection=True)
        with pytest.raises(ProviderUnavailable, match="RemoteProtocolError after 1 attempt"):
            await provider.exchange_code(scene.code(), "ios")
        scene.control.add_fault("token", status=500)
        with pytest.raises(ProviderUnavailable, match="HTTP 500"):
            await provider.exchange_code(scene.code(), "ios")
    assert token_calls(scene, "authorization_code") == 2
    assert scene.sleeps.waits == []


async def test_code_exchange_is_retried_when_the_provider_refused_it_unprocessed(
    scene: Scene,
) -> None:
    async with scene.provider() as provider:
        scene.control.add_fault("token", status=503)
        scene.control.add_fault("token", status=429, headers={"Retry-After": "1"})
        tokens = await provider.exchange_code(scene.code(), "ios")
    assert tokens.refresh_token is not None
    assert token_calls(scene, "authorization_code") == 3
    assert scene.sleeps.waits == [0.5, 1.0]


async def test_connection_refused_is_retried_then_unavailable(tmp_path: Path) -> None:
    # An emulator whose discovery document sends us to a port nobody listens on: the request
    # never left, so even a code exchange is retried.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with run_emulator(EmulatorConfig(base_url=closed)) as handle:
        real = handle.control.base_url
        handle.control.update_settings(issuer=real)
        scene = make_scene(real, handle.control, tmp_path)
        async with scene.provider() as provider:
            assert (await provider.discover()).token_endpoint == f"{closed}/token"
            with pytest.raises(ProviderUnavailable, match="ConnectError after 3 attempt"):
                await provider.exchange_code("4/0Acode", "ios")
    assert scene.sleeps.waits == [0.5, 1.0]


async def test_timeouts_become_provider_timeout(scene: Scene) -> None:
    refresh_token = await signed_in_refresh_token(scene)
    scene.control.add_fault("token", delay_ms=600, count=3)
    async with scene.provider(attempts=2, http_timeout_seconds=0.1) as provider:
        with pytest.raises(ProviderTimeout) as caught:
            await provider.refresh(refresh_token)
        assert "ReadTimeout after 2 attempt" in str(caught.value)
        assert caught.value.status == 504
        # A code exchange that timed out while reading may have spent the code: no retry.
        with pytest.raises(ProviderTimeout, match="after 1 attempt"):
            await provider.exchange_code(scene.code(), "ios")
    scene.control.clear_faults()


async def test_discovery_and_jwks_outages_are_retried(scene: Scene) -> None:
    scene.control.add_fault("discovery", status=502)
    scene.control.add_fault("certs", drop_connection=True)
    async with scene.provider() as provider:
        signed_in = await provider.sign_in(scene.code(), "ios")
    assert signed_in.identity.sub == scene.user["sub"]
    stats = scene.control.stats()
    assert (stats["discovery"], stats["certs"]) == (2, 2)


async def test_jwks_down_with_nothing_cached_fails_closed(scene: Scene) -> None:
    scene.control.add_fault("certs", status=500, count=None)
    async with scene.provider() as provider:
        # Fails closed; the code is spent by then, so the error says to sign in again.
        with pytest.raises(SignInIncomplete, match="jwks"):
            await provider.sign_in(scene.code(), "ios")
    scene.control.clear_faults()


async def test_invalid_grant_is_never_retried(scene: Scene) -> None:
    async with scene.provider() as provider:
        with pytest.raises(InvalidCode):
            await provider.exchange_code("4/0Anot-a-real-code", "ios")
    assert token_calls(scene, "authorization_code") == 1
    assert scene.sleeps.waits == []
