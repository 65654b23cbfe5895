"""Keeper.sign_in against the running emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from grantkeeper.errors import InvalidCode, InvalidRequest, ProviderUnavailable, UntrustedIdToken
from grantkeeper.keeper import Keeper

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio

EMAIL_URL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_URL = "https://www.googleapis.com/auth/userinfo.profile"


async def test_sign_in_exchanges_verifies_and_keeps_the_grant(keeper: Keeper, world: World) -> None:
    result = await keeper.sign_in(world.code(), platform="ios")

    assert result.user["sub"] == world.sub
    assert result.user["email"] == world.email
    assert result.user["email_verified"] is True
    assert result.user["name"] == "Ada Lovelace"
    assert result.grant["offline"] is True
    assert set(result.grant["scopes"]) == {"openid", EMAIL_URL, PROFILE_URL}
    assert result.grant["added_scopes"] == result.grant["scopes"]
    grant = await store_of(keeper).get_grant(world.sub)
    assert grant is not None
    assert grant.refresh_token is not None
    assert grant.refresh_token.startswith("1//")
    assert grant.client_id == world.web_client_id
    events = await store_of(keeper).list_audit(world.sub, kind="sign_in")
    assert events[0].detail["azp"] == world.ios_client_id


async def test_a_retried_post_gets_the_same_answer_without_a_second_exchange(
    keeper: Keeper, world: World
) -> None:
    code = world.code()
    first = await keeper.sign_in(code, idempotency_key="retry-1")
    again = await keeper.sign_in(code, idempotency_key="retry-1")
    assert {**again.to_json(), "replayed": False} == first.to_json()
    assert again.replayed
    assert again.to_json()["replayed"] is True
    assert world.exchanges() == 1


async def test_a_spent_code_without_its_idempotency_key_names_no_identity(
    keeper: Keeper, world: World
) -> None:
    """D2: whoever replays someone else's spent code (no key, another key) learns nothing."""
    code = world.code()
    await keeper.sign_in(code, idempotency_key="the-app's-key")
    for key in (None, "an-attacker's-key"):
        with pytest.raises(InvalidCode) as caught:
            await keeper.sign_in(code, idempotency_key=key)
        assert world.sub not in str(caught.value.to_problem())
        assert world.email not in str(caught.value.to_problem())
    # Without a key on the first POST no retry can get the answer either.
    bare = world.code()
    await keeper.sign_in(bare)
    with pytest.raises(InvalidCode):
        await keeper.sign_in(bare)
    assert world.exchanges() == 2


@pytest.mark.parametrize("ending", ["disconnect", "forget", "provider_revocation"])
async def test_a_kept_answer_dies_with_the_grant(keeper: Keeper, world: World, ending: str) -> None:
    code = world.code()
    await keeper.sign_in(code, idempotency_key="k1")
    if ending == "provider_revocation":
        await store_of(keeper).mark_revoked(world.sub, None, "revoked")
    else:
        await keeper.disconnect(world.sub, forget=ending == "forget")
    with pytest.raises(InvalidCode):
        await keeper.sign_in(code, idempotency_key="k1")


async def test_concurrent_retries_of_one_code_exchange_once(keeper: Keeper, world: World) -> None:
    code = world.code()
    results = []

    async def post() -> None:
        results.append(await keeper.sign_in(code, idempotency_key="one-sign-in"))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(post)
    assert len({r.sub for r in results}) == 1
    assert world.exchanges() == 1


async def test_second_sign_in_without_refresh_token_keeps_the_first(
    keeper: Keeper, world: World
) -> None:
    await keeper.sign_in(world.code())
    stored = await store_of(keeper).get_grant(world.sub)
    assert stored is not None
    second = await keeper.sign_in(world.code())  # no consent screen: Google sends no refresh token
    assert second.grant["offline"] is True
    after = await store_of(keeper).get_grant(world.sub)
    assert after is not None
    assert after.refresh_token == stored.refresh_token
    assert after.access_token != stored.access_token


async def test_incremental_scopes_merge(keeper: Keeper, world: World) -> None:
    await keeper.sign_in(world.code())
    result = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA], include_granted_scopes=True))
    assert result.grant["added_scopes"] == [DRIVE_APPDATA]
    assert DRIVE_APPDATA in result.grant["scopes"]
    assert EMAIL_URL in result.grant["scopes"]


async def test_no_refresh_token_at_all_says_offline_false_and_what_to_do(
    keeper: Keeper, world: World
) -> None:
    result = await keeper.sign_in(world.code(offline=False))
    assert result.grant["offline"] is False
    assert "refresh token" in result.grant["offline_reason"]
    assert "consent" in result.grant["action"]


@pytest.mark.parametrize(
    "code",
    ["4/0AVMBsJiNotARealCodeAtAll", "4%2F0AVMBsJiUrlEncoded", "garbage"],
)
async def test_codes_the_provider_refuses_are_invalid_code(
    keeper: Keeper, world: World, code: str
) -> None:
    with pytest.raises(InvalidCode):
        await keeper.sign_in(code)
    assert await store_of(keeper).list_users() == []


@pytest.mark.parametrize("code", ["", "   ", "4/0" + "x" * 300, "4/0 with space"])
async def test_malformed_codes_never_reach_the_provider(
    keeper: Keeper, world: World, code: str
) -> None:
    with pytest.raises(InvalidRequest):
        await keeper.sign_in(code)
    assert world.exchanges() == 0


async def test_unknown_platform_is_refused(keeper: Keeper, world: World) -> None:
    with pytest.raises(InvalidRequest):
        await keeper.sign_in(world.code(), platform="windows-phone")


async def test_a_used_code_is_invalid_code_once_the_replay_window_is_gone(
    keeper: Keeper, world: World
) -> None:
    code = world.code()
    await keeper.sign_in(code)
    world.emulator.control.advance_clock(11 * 60)
    with pytest.raises(InvalidCode):
        await keeper.sign_in(code)


@pytest.mark.parametrize(
    "fault",
    [
        "alg_none",
        "wrong_key",
        "unknown_kid",
        "wrong_iss",
        "wrong_aud",
        "wrong_azp",
        "expired",
        "iat_future",
    ],
)
async def test_untrusted_id_tokens_store_nothing(keeper: Keeper, world: World, fault: str) -> None:
    world.emulator.control.add_fault("id_token", id_token=fault, count=1)
    with pytest.raises(UntrustedIdToken) as caught:
        await keeper.sign_in(world.code())
    assert caught.value.reason
    assert await store_of(keeper).list_users() == []
    assert await store_of(keeper).get_grant(world.sub) is None


async def test_a_code_for_another_server_client_is_refused(keeper: Keeper, world: World) -> None:
    control = world.emulator.control
    other = control.create_client("web")["web"]["client_id"]
    code = control.server_auth_code(world.ios_client_id, other, world.email, OPENID)
    with pytest.raises(InvalidCode):
        await keeper.sign_in(code)
    assert await store_of(keeper).list_users() == []


async def test_a_retry_reaching_another_instance_waits_for_the_first_answer(
    keeper: Keeper, world: World, store_target: Any, store_keyring: Any
) -> None:
    """Two instances on one store get the same code at once: one exchange, one answer."""
    # Only the exchange is slow (a delay on every answer would slow the second keeper's start).
    world.emulator.control.add_fault("token", delay_ms=1200, count=1)
    other_store = await store_target.open(store_keyring, keeper.clock)
    code = world.code()
    answers: dict[str, Any] = {}
    try:
        async with Keeper(keeper.settings, clock=keeper.clock, store=other_store) as other:

            async def post(name: str, which: Keeper, delay: float) -> None:
                await anyio.sleep(delay)
                answers[name] = await which.sign_in(code, idempotency_key="k")

            async with anyio.create_task_group() as group:
                group.start_soon(post, "first", keeper, 0.0)
                group.start_soon(post, "retry", other, 0.1)  # while the exchange is in flight
    finally:
        world.emulator.control.clear_faults()
        await other_store.close()
    # (Either may return first: the answer for retries is committed with the grant, and the
    # waiting instance can read it before the first one's task resumes.)
    first, retry = answers["first"], answers["retry"]
    assert first.sub == retry.sub == world.sub
    assert (first.user, first.grant) == (retry.user, retry.grant)
    assert (first.replayed, retry.replayed) == (False, True)
    assert world.exchanges() == 1


async def test_a_failed_sign_in_releases_its_claim(keeper: Keeper, world: World) -> None:
    # Refused before processing (503, a Retry-After too long to wait): the code is still good.
    world.emulator.control.add_fault("token", status=503, headers={"Retry-After": "120"}, count=1)
    code = world.code()
    with pytest.raises(ProviderUnavailable):
        await keeper.sign_in(code)
    # The app retries the same code: it is not stuck behind the failed attempt's claim.
    result = await keeper.sign_in(code)
    assert result.sub == world.sub


async def test_mobile_codes_are_redeemed_as_strictly_as_google_wants(
    keeper: Keeper, world: World
) -> None:
    """Google refuses ``postmessage`` for iOS/Android codes; the keeper sends ``''``."""
    world.emulator.control.update_settings(server_auth_code_redirect_uris=[""])
    for platform in ("ios", "android"):
        assert (await keeper.sign_in(world.code(), platform=platform)).sub == world.sub
