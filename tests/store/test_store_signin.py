"""record_sign_in: upserts, incremental scopes, keeping the refresh token, concurrency."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import anyio
import pytest

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing
from grantkeeper.store import GrantStatus, GrantStore, refresh_token_sha512x2
from grantkeeper.store.signin_replay_cache import ReplayEntry

from .helpers import CLIENT, DRIVE, OPENID, OTHER_CLIENT, PHOTOS, OpensStores, profile, sign_in

pytestmark = pytest.mark.anyio


async def test_first_sign_in_creates_user_grant_and_audit(
    store: GrantStore, store_clock: ManualClock
) -> None:
    record = await sign_in(store, store_clock)

    assert record.new_user
    assert record.refresh_token_stored
    assert record.added_scopes == OPENID
    assert record.user.email == "110169484474386276334@example.com"
    assert record.user.email_verified is True
    assert record.user.created_at == store_clock.now()
    grant = record.grant
    assert grant.scopes == OPENID
    assert grant.refresh_token == "1//0g-refresh-token-one"
    assert grant.access_token == "ya29.access-token-one"
    assert grant.access_token_expires_at == store_clock.now() + timedelta(hours=1)
    assert grant.status == GrantStatus.ACTIVE
    assert grant.offline
    assert grant.version == 1
    assert await store.get_grant(grant.sub, CLIENT) == grant
    [event] = await store.list_audit(grant.sub)
    assert (event.kind, event.outcome, event.client_id) == ("sign_in", "ok", CLIENT)
    assert event.detail["added_scopes"] == sorted(OPENID)
    assert event.detail["new_user"] is True


async def test_incremental_sign_in_merges_scopes_and_keeps_the_refresh_token(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock, scopes=OPENID | {DRIVE})
    store_clock.advance(60)
    record = await sign_in(
        store,
        store_clock,
        scopes={"openid", PHOTOS},
        refresh_token=None,
        access_token="ya29.access-token-two",
    )

    assert not record.new_user
    assert not record.refresh_token_stored
    assert record.added_scopes == {PHOTOS}
    assert record.grant.scopes == OPENID | {DRIVE, PHOTOS}
    assert record.grant.refresh_token == "1//0g-refresh-token-one"
    assert record.grant.access_token == "ya29.access-token-two"
    assert record.grant.version == 2
    assert record.grant.offline
    assert record.user.updated_at == store_clock.now()
    assert record.user.created_at == store_clock.now() - timedelta(seconds=60)


async def test_a_new_refresh_token_replaces_the_old_one_and_its_fingerprint(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    record = await sign_in(store, store_clock, refresh_token="1//0g-refresh-token-two")
    assert record.grant.refresh_token == "1//0g-refresh-token-two"
    assert (
        await store.find_grants_by_refresh_token(
            sha512x2=refresh_token_sha512x2("1//0g-refresh-token-one")
        )
        == []
    )
    [ref] = await store.find_grants_by_refresh_token(
        sha512x2=refresh_token_sha512x2("1//0g-refresh-token-two")
    )
    assert (ref.sub, ref.client_id) == (record.grant.sub, CLIENT)


async def test_sign_in_without_any_refresh_token_is_not_offline(
    store: GrantStore, store_clock: ManualClock
) -> None:
    record = await sign_in(store, store_clock, refresh_token=None)
    assert record.grant.refresh_token is None
    assert not record.grant.offline
    assert record.grant.status == GrantStatus.ACTIVE
    [event] = await store.list_audit()
    assert event.detail["offline"] is False


async def test_a_missing_claim_keeps_the_stored_one(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    await store.record_sign_in(
        profile(name="Ada King", picture=None, locale=None),
        CLIENT,
        {"openid"},
        None,
        "ya29.x",
        store_clock.now(),
    )
    user = await store.get_user("110169484474386276334")
    assert user is not None
    assert user.name == "Ada King"
    assert user.picture == "https://example.com/ada.png"
    assert user.locale == "pl"


async def test_a_new_refresh_token_reactivates_a_revoked_grant(
    store: GrantStore, store_clock: ManualClock
) -> None:
    first = await sign_in(store, store_clock)
    assert await store.mark_revoked(first.grant.sub, CLIENT, "invalid_grant") == 1

    without = await sign_in(store, store_clock, refresh_token=None)
    assert without.grant.status == GrantStatus.REVOKED
    assert not without.reactivated
    assert not without.grant.offline

    again = await sign_in(store, store_clock, refresh_token="1//0g-refresh-token-two")
    assert again.reactivated
    assert again.grant.status == GrantStatus.ACTIVE
    assert again.grant.status_reason is None
    assert again.grant.offline


async def test_grants_are_per_client(store: GrantStore, store_clock: ManualClock) -> None:
    await sign_in(store, store_clock, client_id=CLIENT, scopes={"openid"})
    store_clock.advance(1)
    await sign_in(
        store, store_clock, client_id=OTHER_CLIENT, scopes={DRIVE}, refresh_token="1//0g-other"
    )
    sub = "110169484474386276334"
    assert (await store.get_grant(sub, CLIENT)).scopes == {"openid"}  # type: ignore[union-attr]
    latest = await store.get_grant(sub)
    assert latest is not None
    assert latest.client_id == OTHER_CLIENT
    assert latest.refresh_token == "1//0g-other"
    assert [g.client_id for g in await store.list_grants(sub=sub)] == [CLIENT, OTHER_CLIENT]
    assert [u.sub for u in await store.list_users()] == [sub]


async def test_unknown_user_and_grant_are_none(store: GrantStore) -> None:
    assert await store.get_user("nobody") is None
    assert await store.get_grant("nobody") is None
    assert await store.get_grant("nobody", CLIENT) is None


async def test_concurrent_sign_ins_leave_one_consistent_grant(
    store: GrantStore,
    store_target: OpensStores,
    store_keyring: KeyRing,
    store_clock: ManualClock,
) -> None:
    """Eight sign-ins of one new user at once, through four separate engines (as four
    processes would): one user, one grant, the union of every scope, every version counted."""
    stores = [store] + [await store_target.open(store_keyring, store_clock) for _ in range(3)]
    scopes = [f"https://example.com/scope-{n}" for n in range(8)]
    records = []
    try:
        async with anyio.create_task_group() as group:
            for n, scope in enumerate(scopes):

                async def one(n: int = n, scope: str = scope) -> None:
                    records.append(
                        await sign_in(
                            stores[n % len(stores)],
                            store_clock,
                            scopes={"openid", scope},
                            refresh_token=f"1//0g-refresh-{n}",
                            access_token=f"ya29.access-{n}",
                        )
                    )

                group.start_soon(one)
    finally:
        for extra in stores[1:]:
            await extra.close()

    [grant] = await store.list_grants()
    assert grant.scopes == {"openid", *scopes}
    assert grant.version == 8
    assert sorted(r.grant.version for r in records) == list(range(1, 9))
    assert sum(r.new_user for r in records) == 1
    # The last writer (highest version) is the one whose tokens are stored, both of them.
    last = max(records, key=lambda r: r.grant.version)
    assert grant.refresh_token == last.grant.refresh_token
    assert grant.access_token is not None
    assert grant.access_token.rsplit("-", 1)[1] == grant.refresh_token.rsplit("-", 1)[1]
    # Every sign-in's added scopes together are exactly the final scope set.
    added = [record.added_scopes for record in records]
    assert sum(len(a) for a in added) == len(grant.scopes)
    assert frozenset().union(*added) == grant.scopes
    assert len(await store.list_audit(kind="sign_in")) == 8
    assert len(await store.list_users()) == 1


async def test_a_sign_in_with_its_retry_answer_writes_the_answer_and_one_audit_event(
    store: GrantStore, store_clock: ManualClock
) -> None:
    # On PostgreSQL the answer and the audit event are one statement; the same rows either way.
    code_hash = "c0de" * 16
    assert await store.claim_signin(code_hash, timedelta(minutes=1))
    sub = "110169484474386276334"
    for new_user in (True, False):
        record = await store.record_sign_in(
            profile(sub),
            OTHER_CLIENT,
            set(OPENID),
            "1//0g-refresh",
            "ya29.access",
            store_clock.now() + timedelta(hours=1),
            audit_detail={"platform": "ios"},
            replay=ReplayEntry(
                code_hash, timedelta(minutes=10), lambda r: f'{{"version": {r.grant.version}}}'
            ),
        )
        assert record.new_user is new_user
        assert await store.recall_signin_response(code_hash) == (
            f'{{"version": {record.grant.version}}}'
        )
        event = (await store.list_audit(sub, kind="sign_in"))[0]
        assert (event.kind, event.outcome, event.sub, event.client_id, event.at) == (
            "sign_in",
            "ok",
            sub,
            OTHER_CLIENT,
            store_clock.now(),
        )
        assert event.detail["new_user"] is new_user
        assert event.detail["platform"] == "ios"
        assert event.detail["offline"] is True
        store_clock.advance(60)
    assert len(await store.list_audit(sub, kind="sign_in")) == 2


@pytest.mark.parametrize("with_answer", [False, True], ids=["alone", "with-retry-answer"])
async def test_the_record_of_a_sign_in_is_the_grant_and_user_as_stored(
    store: GrantStore, store_clock: ManualClock, with_answer: bool
) -> None:
    # With an answer to keep, PostgreSQL writes the grant without reading it back (one
    # statement with the audit event and the answer): the record must still be what is stored,
    # in every field, through a first sign-in, an incremental one, a new refresh token, a
    # revocation and a reactivation, with an expiry given in another time zone.
    sub = "110169484474386276334"
    warsaw = timezone(timedelta(hours=1))
    steps: list[tuple[set[str], str | None, dict[str, str | None]]] = [
        ({"openid"}, "1//0g-refresh-one", {}),
        ({"openid", DRIVE}, None, {"name": "Ada King", "picture": None}),
        ({PHOTOS}, "1//0g-refresh-two", {"locale": None}),
        ({"openid"}, None, {}),
        ({"openid"}, "1//0g-refresh-three", {"name": "Ada Lovelace"}),
    ]
    for n, (scopes, refresh_token, claims) in enumerate(steps):
        if n == 3:
            assert await store.mark_revoked(sub, CLIENT, "invalid_grant") == 1
        replay = (
            ReplayEntry(f"{n:064x}", timedelta(minutes=10), lambda r: r.grant.sub)
            if with_answer
            else None
        )
        if replay is not None:
            assert await store.claim_signin(replay.code_hash, timedelta(minutes=1))
        record = await store.record_sign_in(
            profile(sub, **claims),
            CLIENT,
            scopes,
            refresh_token,
            f"ya29.access-{n}",
            (store_clock.now() + timedelta(hours=1)).astimezone(warsaw),
            store_clock.now() + timedelta(days=7) if refresh_token else None,
            replay=replay,
        )
        assert record.grant == await store.get_grant(sub, CLIENT)
        assert record.grant.access_token_expires_at.tzinfo == UTC
        assert record.user == await store.get_user(sub)
        assert record.new_user is (n == 0)
        assert record.reactivated is (n == 4)
        if replay is not None:
            assert await store.recall_signin_response(replay.code_hash) == sub
        store_clock.advance(60)
    assert len(await store.list_audit(sub, kind="sign_in")) == len(steps)
