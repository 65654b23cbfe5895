"""The refresh lease and the version compare-and-swap, on both databases."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
import sqlalchemy as sa

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing
from grantkeeper.store import AuditEvent, GrantStatus, GrantStore, refresh_token_sha512x2
from grantkeeper.store.tables import grants

from .helpers import CLIENT, OpensStores, raw_sql, sign_in

pytestmark = pytest.mark.anyio

SUB = "110169484474386276334"
TTL = timedelta(seconds=30)


async def raw_grant_row(store: GrantStore) -> dict[str, object]:
    """Every column of the grant row as stored (ciphertexts included)."""
    async with raw_sql(store, write=False) as conn:
        return dict((await conn.execute(sa.select(grants))).one()._mapping)


async def test_only_one_owner_holds_the_lease(store: GrantStore, store_clock: ManualClock) -> None:
    signed = await sign_in(store, store_clock)

    mine = await store.try_acquire_lease(SUB, CLIENT, "worker-a", TTL)
    assert mine is not None
    assert mine.lease_owner == "worker-a"
    assert mine.lease_expires_at == store_clock.now() + TTL
    assert mine.version == signed.grant.version  # a lease is not a data change
    assert mine.lease_is_live(store_clock.now())

    assert await store.try_acquire_lease(SUB, CLIENT, "worker-b", TTL) is None
    # The holder may extend its own lease.
    store_clock.advance(10)
    again = await store.try_acquire_lease(SUB, CLIENT, "worker-a", TTL)
    assert again is not None
    assert again.lease_expires_at == store_clock.now() + TTL

    assert not await store.release_lease(SUB, CLIENT, "worker-b")
    assert await store.release_lease(SUB, CLIENT, "worker-a")
    theirs = await store.try_acquire_lease(SUB, CLIENT, "worker-b", TTL)
    assert theirs is not None
    assert theirs.lease_owner == "worker-b"


async def test_a_dead_holders_lease_expires_by_the_clock(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    assert await store.try_acquire_lease(SUB, CLIENT, "crashed", TTL) is not None
    store_clock.advance(29)
    assert await store.try_acquire_lease(SUB, CLIENT, "worker-b", TTL) is None
    store_clock.advance(1)
    taken = await store.try_acquire_lease(SUB, CLIENT, "worker-b", TTL)
    assert taken is not None
    assert taken.lease_owner == "worker-b"


async def test_no_lease_on_a_missing_grant(store: GrantStore) -> None:
    assert await store.try_acquire_lease("nobody", CLIENT, "worker-a", TTL) is None


async def test_save_refreshed_writes_rotated_token_and_clears_the_lease(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    leased = await store.try_acquire_lease(SUB, CLIENT, "worker-a", TTL)
    assert leased is not None
    store_clock.advance(5)
    expires = store_clock.now() + timedelta(hours=1)

    assert await store.save_refreshed(
        SUB, CLIENT, leased.version, "ya29.fresh", expires, "1//0g-rotated", "worker-a"
    )

    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.access_token == "ya29.fresh"
    assert grant.access_token_expires_at == expires
    assert grant.refresh_token == "1//0g-rotated"
    assert grant.version == leased.version + 1
    assert grant.last_refreshed_at == store_clock.now()
    assert grant.lease_owner is None
    assert grant.lease_expires_at is None
    assert await store.find_grants_by_refresh_token(
        sha512x2=refresh_token_sha512x2("1//0g-rotated")
    )


async def test_save_refreshed_without_rotation_keeps_the_refresh_token(
    store: GrantStore, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock)
    assert await store.save_refreshed(
        SUB, CLIENT, signed.grant.version, "ya29.fresh", store_clock.now(), None, None
    )
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.refresh_token == "1//0g-refresh-token-one"
    assert grant.access_token == "ya29.fresh"


async def test_a_slow_refresher_with_a_stale_version_writes_nothing(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    slow = await store.try_acquire_lease(SUB, CLIENT, "slow", TTL)
    assert slow is not None
    # The slow worker's lease runs out; a fast one takes over and refreshes first.
    store_clock.advance(31)
    fast = await store.try_acquire_lease(SUB, CLIENT, "fast", TTL)
    assert fast is not None
    assert await store.save_refreshed(
        SUB, CLIENT, fast.version, "ya29.fast", store_clock.now() + TTL, "1//0g-fast", "fast"
    )
    fast_holds_again = await store.try_acquire_lease(SUB, CLIENT, "fast", TTL)
    assert fast_holds_again is not None
    before = await raw_grant_row(store)

    assert not await store.save_refreshed(
        SUB, CLIENT, slow.version, "ya29.slow", store_clock.now() + TTL, "1//0g-slow", "slow"
    )

    assert await raw_grant_row(store) == before  # not a byte changed, the lease included
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert (grant.access_token, grant.refresh_token) == ("ya29.fast", "1//0g-fast")


async def test_a_sign_in_during_a_refresh_wins_over_it(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    leased = await store.try_acquire_lease(SUB, CLIENT, "worker", TTL)
    assert leased is not None
    await sign_in(store, store_clock, refresh_token="1//0g-new-consent")
    assert not await store.save_refreshed(
        SUB, CLIENT, leased.version, "ya29.late", store_clock.now(), None, "worker"
    )
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.refresh_token == "1//0g-new-consent"
    assert grant.lease_owner == "worker"  # untouched; the worker releases it
    assert await store.release_lease(SUB, CLIENT, "worker")


async def test_revocation_is_a_compare_and_swap_too(
    store: GrantStore, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock)
    stale = signed.grant.version
    assert await store.save_refreshed(SUB, CLIENT, stale, "ya29.b", store_clock.now(), None)
    # invalid_grant seen with the old version: a lost race, not a revocation.
    assert await store.mark_revoked(SUB, CLIENT, "invalid_grant", expected_version=stale) == 0
    current = await store.get_grant(SUB, CLIENT)
    assert current is not None
    assert current.status == GrantStatus.ACTIVE
    assert await store.mark_revoked(SUB, CLIENT, "invalid_grant", current.version) == 1
    revoked = await store.get_grant(SUB, CLIENT)
    assert revoked is not None
    assert (revoked.status, revoked.status_reason) == (GrantStatus.REVOKED, "invalid_grant")
    assert revoked.status_changed_at == store_clock.now()
    assert revoked.access_token is None  # never handed out again
    assert revoked.refresh_token == "1//0g-refresh-token-one"  # kept for RISC hash matching
    assert not revoked.offline


async def test_many_contenders_exactly_one_lease(
    store: GrantStore,
    store_target: OpensStores,
    store_keyring: KeyRing,
    store_clock: ManualClock,
) -> None:
    await sign_in(store, store_clock)
    stores = [store] + [await store_target.open(store_keyring, store_clock) for _ in range(3)]
    winners: list[str] = []
    try:
        async with anyio.create_task_group() as group:
            for n in range(20):

                async def contend(n: int = n) -> None:
                    got = await stores[n % 4].try_acquire_lease(SUB, CLIENT, f"w{n}", TTL)
                    if got is not None:
                        assert got.lease_owner == f"w{n}"
                        winners.append(f"w{n}")

                group.start_soon(contend)
    finally:
        for extra in stores[1:]:
            await extra.close()
    assert len(winners) == 1
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.lease_owner == winners[0]


async def test_a_saved_refresh_writes_its_events_and_ends_the_cooldown_a_stale_one_neither(
    store: GrantStore, store_clock: ManualClock
) -> None:
    # On PostgreSQL one statement (data-modifying CTEs), on SQLite one transaction: the same
    # outcome either way, and nothing of it when the version moved on.
    signed = await sign_in(store, store_clock)
    step = timedelta(seconds=60)
    await store.record_refresh_failure(SUB, CLIENT, "temporarily_unavailable", base=step, cap=step)
    stale = signed.grant.version
    leased = await store.try_acquire_lease(SUB, CLIENT, "worker", TTL)
    assert leased is not None

    def kinds_of(events: list[AuditEvent]) -> list[tuple[str, str, object]]:
        return [(e.kind, e.outcome, e.detail) for e in events if e.kind in ("refresh", "token")]

    assert await store.save_refreshed(
        SUB,
        CLIENT,
        leased.version,
        "ya29.refreshed",
        store_clock.now() + TTL,
        None,
        "worker",
        audit_detail={"caller": "sweep", "n": 1},
        hand_out_detail={"key": "svc", "scopes": ["openid"]},
        clear_cooldown=True,
    )
    assert await store.get_cooldown(SUB, CLIENT) is None
    events = kinds_of(await store.list_audit(SUB))
    assert events == [  # newest first
        ("token", "refreshed", {"key": "svc", "scopes": ["openid"]}),
        ("refresh", "ok", {"caller": "sweep", "n": 1}),
    ]
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert (grant.access_token, grant.lease_owner) == ("ya29.refreshed", None)
    assert grant.version == leased.version + 1

    await store.record_refresh_failure(SUB, CLIENT, "temporarily_unavailable", base=step, cap=step)
    assert not await store.save_refreshed(
        SUB,
        CLIENT,
        stale,
        "ya29.late",
        store_clock.now() + TTL,
        None,
        audit_detail={"caller": "late"},
        hand_out_detail={"key": "late"},
        clear_cooldown=True,
    )
    assert await store.get_cooldown(SUB, CLIENT) is not None
    assert kinds_of(await store.list_audit(SUB)) == events
    # Only an audit event, no cooldown to end: the statement's other shape.
    current = await store.get_grant(SUB, CLIENT)
    assert current is not None
    assert await store.save_refreshed(
        SUB, CLIENT, current.version, "ya29.c", store_clock.now(), None, audit_detail={"n": 3}
    )
    assert await store.get_cooldown(SUB, CLIENT) is not None
    assert kinds_of(await store.list_audit(SUB))[0] == ("refresh", "ok", {"n": 3})
