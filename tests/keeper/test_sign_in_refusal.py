"""A sign-in the app can refuse before anything is stored, and a sign-in that does not end never
leaves the user without offline access: what Google issued is revoked, so the next sign-in asks
for consent again and brings a refresh token (against the emulator, which remembers consent as
Google does)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from grantkeeper.errors import SignInRefused, UntrustedIdToken
from grantkeeper.keeper import Keeper, SignInCandidate
from grantkeeper.keeper.sign_in_decision import unverified_sub
from grantkeeper.keeper.sync import SyncKeeper

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio


async def test_the_app_refuses_a_new_user_nothing_is_stored_and_the_next_sign_in_is_offline(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")
    seen: list[SignInCandidate] = []

    async def only_example_org(candidate: SignInCandidate) -> None:
        seen.append(candidate)
        if not (candidate.email or "").endswith("@example.org"):
            raise SignInRefused("Only example.org accounts may use this app.")

    with pytest.raises(SignInRefused) as refused:
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=only_example_org)
    assert refused.value.code == "sign_in_refused"
    assert refused.value.status == 403
    [candidate] = seen
    assert candidate.sub == world.sub
    assert candidate.email == world.email
    assert candidate.new_user is True
    assert candidate.offline is True
    assert DRIVE_APPDATA in candidate.scopes
    assert await store_of(keeper).get_user(world.sub) is None  # nothing stored
    assert await store_of(keeper).get_grant(world.sub) is None
    assert "revoked what Google issued" in caplog.text
    assert "sign_in_refused: Only example.org accounts may use this app." in caplog.text
    audit = await store_of(keeper).list_audit(world.sub)
    assert [(e.outcome, e.detail["revoked_at_provider"]) for e in audit] == [
        ("sign_in_refused", True)
    ]

    # The consent was forgotten at Google: the next sign-in is offline again.
    again = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    assert again.offline is True
    token = await keeper.access_token(world.sub, [DRIVE_APPDATA])
    assert token.token


async def test_the_hook_lets_a_returning_user_in_and_sees_them_as_known(
    keeper: Keeper, world: World
) -> None:
    first = await keeper.sign_in(world.code())
    seen: list[SignInCandidate] = []
    result = await keeper.sign_in(world.code(), decide=lambda c: seen.append(c))  # type: ignore[arg-type,func-returns-value]
    assert result.sub == first.sub
    assert seen[0].new_user is False
    assert seen[0].offline is False  # Google remembers the consent: no second refresh token


async def test_a_refused_returning_user_keeps_the_stored_grant(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")
    await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))

    def refuse(candidate: SignInCandidate) -> None:  # a plain function runs in a thread
        raise SignInRefused("The account is suspended.")

    with pytest.raises(SignInRefused):
        # prompt=consent: Google issues a second refresh token for the same grant.
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA], prompt="consent"), decide=refuse)
    assert "the stored grant keeps offline access" in caplog.text
    world.emulator.control.advance_clock(2 * 3600)
    token = await keeper.access_token(world.sub, [DRIVE_APPDATA])  # the stored grant still works
    assert token.refreshed


@pytest.mark.parametrize(
    ("fault", "check"), [("wrong_azp", "azp"), ("unknown_kid", "kid"), ("iat_future", "iat")]
)
async def test_a_first_sign_in_refused_by_a_check_does_not_lose_offline_access(
    keeper: Keeper, world: World, fault: str, check: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A wrong GRANTKEEPER_ALLOWED_CLIENT_IDS, stale keys, a clock off: the exchange succeeded.
    caplog.set_level(logging.INFO, logger="grantkeeper")
    world.emulator.control.add_fault("id_token", id_token=fault, count=1)
    with pytest.raises(UntrustedIdToken) as refused:
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    assert refused.value.check == check
    assert refused.value.reason in caplog.text  # the why is logged
    assert "revoked what Google issued" in caplog.text
    assert await store_of(keeper).get_user(world.sub) is None

    fixed = await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    assert fixed.offline is True  # without the revocation this would be offline: false for good


def test_sync_keeper_passes_the_hook(world: World, store_target: Any) -> None:
    from grantkeeper.crypto import generate_key

    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [generate_key()],
        }
    )
    with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:

        def refuse(candidate: SignInCandidate) -> None:
            raise SignInRefused("No new accounts today.")

        with pytest.raises(SignInRefused):
            keeper.sign_in(world.code(), decide=refuse)
        assert keeper.sign_in(world.code()).offline is True


async def test_an_async_hook_that_accepts_lets_the_user_in(keeper: Keeper, world: World) -> None:
    seen: list[str] = []

    async def accept(candidate: SignInCandidate) -> None:
        seen.append(candidate.sub)

    result = await keeper.sign_in(world.code(), decide=accept)
    assert seen == [world.sub] == [result.sub]
    assert await store_of(keeper).get_grant(world.sub) is not None


async def test_a_plain_hook_may_hand_back_an_awaitable_which_is_awaited(
    keeper: Keeper, world: World
) -> None:
    async def check(candidate: SignInCandidate) -> None:
        raise SignInRefused(f"{candidate.email} is on the waiting list.")

    def decide(candidate: SignInCandidate) -> Any:
        return check(candidate)  # e.g. a functools.partial of an async function

    with pytest.raises(SignInRefused, match="waiting list"):
        await keeper.sign_in(world.code(), decide=decide)
    assert await store_of(keeper).get_user(world.sub) is None


async def test_a_refused_sign_in_without_a_refresh_token_gives_nothing_back(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")
    await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))

    def refuse(candidate: SignInCandidate) -> None:
        assert candidate.offline is False  # Google remembers the consent: no refresh token
        raise SignInRefused("Not now.")

    with pytest.raises(SignInRefused):
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=refuse)
    assert "Google issued no refresh token, so nothing is lost" in caplog.text
    assert world.stats().get("revoke", 0) == 0  # nothing to revoke
    world.emulator.control.advance_clock(2 * 3600)
    assert (await keeper.access_token(world.sub, [DRIVE_APPDATA])).refreshed


async def test_when_giving_back_fails_the_log_says_what_the_next_sign_in_needs(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")
    world.emulator.control.add_fault("revoke", status=503, count=None)

    def refuse(candidate: SignInCandidate) -> None:
        raise SignInRefused("Not today.")

    with pytest.raises(SignInRefused):
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=refuse)
    assert "revoking what Google issued failed (provider_unavailable)" in caplog.text
    assert "prompt=consent" in caplog.text
    assert await store_of(keeper).get_user(world.sub) is None
    world.emulator.control.clear_faults("revoke")
    # Google kept the consent: exactly the case the log warns about.
    assert (await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))).offline is False


async def test_a_hook_that_crashes_still_gives_back_what_google_issued(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")

    def buggy(candidate: SignInCandidate) -> None:
        raise KeyError("plan")

    with pytest.raises(KeyError):
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=buggy)
    assert "did not complete (KeyError); revoked what Google issued" in caplog.text
    audit = await store_of(keeper).list_audit(world.sub)
    assert [(e.outcome, e.detail["revoked_at_provider"]) for e in audit] == [
        ("internal_error", True)
    ]
    assert (await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))).offline is True


def _unsigned(payload: object) -> str:
    """An ID token's shape with ``payload`` (its signature is never checked here)."""

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(payload)}.c2ln"


def test_the_sub_of_an_unverified_id_token_is_read_for_the_log_only() -> None:
    assert unverified_sub(_unsigned({"sub": "1234"})) == "1234"
    # No token, not a JWS, a payload that is a list, no sub, a sub that is not a string, a sub
    # longer than any Google sub: no identity to name.
    assert unverified_sub(None) is None
    assert unverified_sub("") is None
    assert unverified_sub("not-a-jwt") is None
    assert unverified_sub(_unsigned(["sub"])) is None
    assert unverified_sub(_unsigned({"email": "a@b"})) is None
    assert unverified_sub(_unsigned({"sub": 1234})) is None
    assert unverified_sub(_unsigned({"sub": "x" * 256})) is None


async def test_when_the_store_cannot_say_what_the_user_has_nothing_is_revoked(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Revoking could take the offline access of a stored grant with it: without knowing, keep.
    from grantkeeper.errors import StoreUnavailable

    caplog.set_level(logging.INFO, logger="grantkeeper")
    store = store_of(keeper)

    async def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("The database is unavailable (OperationalError).")

    def refuse(candidate: SignInCandidate) -> None:
        monkeypatch.setattr(store, "get_grant", database_gone)
        raise SignInRefused("Not now.")

    with pytest.raises(SignInRefused):
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=refuse)
    assert "the store cannot say whether the user already has offline access" in caplog.text
    assert world.stats().get("revoke", 0) == 0


async def test_an_audit_the_store_cannot_write_does_not_hide_the_refusal(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grantkeeper.errors import StoreUnavailable

    caplog.set_level(logging.INFO, logger="grantkeeper")
    store = store_of(keeper)

    async def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("The database is unavailable (OperationalError).")

    def refuse(candidate: SignInCandidate) -> None:
        monkeypatch.setattr(store, "append_audit", database_gone)
        raise SignInRefused("Not now.")

    with pytest.raises(SignInRefused):
        await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]), decide=refuse)
    assert "revoked what Google issued" in caplog.text  # the give-back itself happened
    assert "could not audit the discarded sign-in" in caplog.text
