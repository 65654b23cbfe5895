"""Hand-outs of stored tokens are written together: one transaction for the hand-outs of one
moment, every caller back only after it committed, a failure failing them all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.clock import ManualClock
from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore

from .helpers import CLIENT, sign_in

pytestmark = pytest.mark.anyio

SUBS = [f"1101694844743862763{i:02d}" for i in range(5)]


def count_writes(store: GrantStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's write transactions from now on."""
    writes = [0]
    write = store._write

    def counted() -> AbstractAsyncContextManager[AsyncConnection]:
        writes[0] += 1
        return write()

    monkeypatch.setattr(store, "_write", counted)
    return writes


async def test_forty_hand_outs_at_once_are_all_audited_in_fewer_transactions(
    store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in SUBS:
        await sign_in(store, store_clock, sub=sub)
    writes = count_writes(store, monkeypatch)
    await asyncio.gather(
        *(
            store.record_hand_out(
                SUBS[i % len(SUBS)],
                CLIENT,
                used_at=store_clock.now() if i < len(SUBS) else None,
                audit_detail={"caller": f"worker-{i}", "scopes": [], "forced": False},
            )
            for i in range(40)
        )
    )
    assert writes[0] < 40
    callers = []
    for sub in SUBS:
        events = [e for e in await store.list_audit(sub) if e.kind == "token"]
        assert all(e.outcome == "ok" and e.client_id == CLIENT for e in events)
        callers += [e.detail["caller"] for e in events]
        grant = await store.get_grant(sub, CLIENT)
        assert grant is not None
        assert grant.last_used_at == store_clock.now()
    assert sorted(callers) == sorted(f"worker-{i}" for i in range(40))


async def test_a_failed_write_fails_every_hand_out_of_its_batch_and_the_next_one_works(
    store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(store, store_clock, sub=SUBS[0])
    write = store._write

    @asynccontextmanager
    async def failing() -> AsyncIterator[AsyncConnection]:
        raise StoreUnavailable("The database is unavailable (test).")
        yield  # pragma: no cover

    monkeypatch.setattr(store, "_write", failing)
    outcomes = await asyncio.gather(
        *(
            store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": str(i)})
            for i in range(5)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    monkeypatch.setattr(store, "_write", write)
    await store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": "after"})
    events = [e for e in await store.list_audit(SUBS[0]) if e.kind == "token"]
    assert [e.detail["caller"] for e in events] == ["after"]


async def test_a_caller_that_goes_away_does_not_take_the_others_write_with_it(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock, sub=SUBS[0])
    tasks = [
        asyncio.ensure_future(
            store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": str(i)})
        )
        for i in range(3)
    ]
    await asyncio.sleep(0)  # each has queued its hand-out
    tasks[0].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert done[1:] == [None, None]
    events = [e for e in await store.list_audit(SUBS[0]) if e.kind == "token"]
    # Its hand-out was queued before it left: the batch wrote it with the others.
    assert sorted(e.detail["caller"] for e in events) == ["0", "1", "2"]
