"""The pieces `keys rotate` and `keys status` are built on."""

from __future__ import annotations

import pytest

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.errors import TokenDecryptionError
from grantkeeper.store import GrantStore

from .helpers import CLIENT, OpensStores, sign_in

pytestmark = pytest.mark.anyio


async def test_rotation_in_batches_survives_interruption_and_keeps_refreshes(
    store_target: OpensStores, store_clock: ManualClock
) -> None:
    old_spec, new_spec = generate_key("old"), generate_key("new")
    async with await store_target.open(KeyRing.from_strings([old_spec]), store_clock) as old:
        for n in range(25):
            await sign_in(
                old,
                store_clock,
                sub=f"user-{n:02d}",
                refresh_token=f"1//0g-refresh-{n}",
                access_token=f"ya29.access-{n}",
            )
        # One grant holds only a refresh token (sign-in without access token is impossible,
        # so erase the access token), one holds nothing at all.
        await old.set_status("user-23", CLIENT, "revoked", "test")
        await old.erase_tokens("user-24")
        assert await old.count_by_key_id() == {"old": 25 * 2 - 3}

    ring = KeyRing.from_strings([new_spec, old_spec])
    async with await store_target.open(ring, store_clock) as store:
        # Everything still reads with the old key in the ring.
        grant = await store.get_grant("user-07")
        assert grant is not None
        assert grant.refresh_token == "1//0g-refresh-7"

        batches = store.iter_encrypted_rows(batch_size=10)
        first = await anext(batches)
        assert [row.grant_id for row in first] == list(range(1, 11))
        assert {row.refresh_token_kid for row in first} == {"old"}
        assert await store.reencrypt_batch(first) == 20
        await batches.aclose()  # interrupted here

        # A refresh lands mid-rotation: written under the new key, version-checked as usual.
        grant = await store.get_grant("user-15")
        assert grant is not None
        assert await store.save_refreshed(
            "user-15", CLIENT, grant.version, "ya29.during", store_clock.now(), None
        )
        assert await store.count_by_key_id() == {"new": 21, "old": 26}

        resumed = [row async for batch in store.iter_encrypted_rows(10) for row in batch]
        assert [row.grant_id for row in resumed] == list(range(11, 25))  # 25 holds no token
        rewritten = 0
        async for batch in store.iter_encrypted_rows(batch_size=4):
            rewritten += await store.reencrypt_batch(batch)
        assert rewritten == 26
        assert await store.count_by_key_id() == {"new": 47}
        assert [b async for b in store.iter_encrypted_rows(10)] == []
        assert await store.reencrypt_batch([]) == 0

    # The old key can go: every token reads with the new key alone.
    async with await store_target.open(KeyRing.from_strings([new_spec]), store_clock) as store:
        grants = await store.list_grants()
        assert len(grants) == 25
        assert grants[15].access_token == "ya29.during"
        assert grants[7].refresh_token == "1//0g-refresh-7"
        assert grants[7].access_token == "ya29.access-7"
        assert grants[23].access_token is None
        # Versions were not bumped by re-encryption (no in-flight refresh loses its CAS).
        assert grants[3].version == 1


async def test_a_retired_key_fails_loudly(
    store_target: OpensStores, store_clock: ManualClock
) -> None:
    async with await store_target.open(
        KeyRing.from_strings([generate_key("old")]), store_clock
    ) as old:
        await sign_in(old, store_clock)
    ring = KeyRing.from_strings([generate_key("new")])
    async with await store_target.open(ring, store_clock) as store:
        assert await store.count_by_key_id() == {"old": 2}
        with pytest.raises(TokenDecryptionError, match="'old'"):
            await store.list_grants()


async def test_iterating_every_row_not_only_stale_ones(
    store: GrantStore, store_clock: ManualClock
) -> None:
    for n in range(3):
        await sign_in(store, store_clock, sub=f"u{n}")
    rows = [row async for batch in store.iter_encrypted_rows(2, only_stale=False) for row in batch]
    assert [row.sub for row in rows] == ["u0", "u1", "u2"]
    assert [row async for batch in store.iter_encrypted_rows(2) for row in batch] == []
