"""Hand-outs of stored tokens are written together: one transaction for the hand-outs of one
moment, every caller back only after it committed, a failure failing them all."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.clock import ManualClock
from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore

from .helpers import CLIENT, sign_in

pytestmark = pytest.mark.anyio

SUBS = [f"1101694844743862763{i:02d}" for i in range(5)]


def replace_writes(
    monkeypatch: pytest.MonkeyPatch,
    store: GrantStore,
    make: Callable[..., AbstractAsyncContextManager[AsyncConnection]],
) -> Callable[[], None]:
    """Every write transaction of the store from now on is ``make()`` (a batch of audit rows
    alone is a one-statement write, ``_write_one``; one with last uses a ``_write``), until
    the returned function puts the store's own back."""
    write, write_one = store._write, store._write_one
    monkeypatch.setattr(store, "_write", make)
    monkeypatch.setattr(store, "_write_one", make)

    def restore() -> None:
        monkeypatch.setattr(store, "_write", write)
        monkeypatch.setattr(store, "_write_one", write_one)

    return restore


def count_writes(store: GrantStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's write transactions from now on."""
    writes = [0]
    write = store._write

    def counted(**options: Any) -> AbstractAsyncContextManager[AsyncConnection]:
        writes[0] += 1
        return write(**options)

    replace_writes(monkeypatch, store, counted)
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

    @asynccontextmanager
    async def failing(**_options: Any) -> AsyncIterator[AsyncConnection]:
        raise StoreUnavailable("The database is unavailable (test).")
        yield  # pragma: no cover

    restore = replace_writes(monkeypatch, store, failing)
    outcomes = await asyncio.gather(
        *(
            store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": str(i)})
            for i in range(5)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    restore()
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


async def test_a_batch_writes_one_last_use_per_grant_in_grant_order() -> None:
    from datetime import UTC, datetime

    from grantkeeper.store.hand_outs import _one_per_grant_in_order

    def row(sub: str, minute: int) -> dict[str, object]:
        at = datetime(2026, 1, 1, 0, minute, tzinfo=UTC)
        return {"w_sub": sub, "w_client_id": CLIENT, "p_last_used_at": at}

    rows = _one_per_grant_in_order([row("b", 1), row("a", 2), row("b", 3), row("a", 1)])
    assert [(r["w_sub"], r["p_last_used_at"].minute) for r in rows] == [("a", 2), ("b", 3)]  # type: ignore[attr-defined]


async def test_two_stores_handing_out_the_same_grants_in_opposite_orders_do_not_deadlock(
    store: GrantStore, store_clock: ManualClock, store_target: object
) -> None:
    # Two processes' batches lock the same grants' rows (their last use): in one order.
    for sub in SUBS[:2]:
        await sign_in(store, store_clock, sub=sub)
    other = await store_target.open(store._keyring, store_clock)  # type: ignore[attr-defined]
    try:
        for _ in range(30):
            now = store_clock.now()
            await asyncio.gather(
                *(store.record_hand_out(sub, CLIENT, used_at=now) for sub in SUBS[:2]),
                *(other.record_hand_out(sub, CLIENT, used_at=now) for sub in reversed(SUBS[:2])),
            )
            store_clock.advance(60)
    finally:
        await other.close()


async def test_a_batch_cancelled_while_it_waits_for_the_one_before_does_not_stop_later_ones(
    store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(store, store_clock, sub=SUBS[0])
    write = store._write
    release = asyncio.Event()

    @asynccontextmanager
    async def slow(**options: Any) -> AsyncIterator[AsyncConnection]:
        await release.wait()
        async with write(**options) as conn:
            yield conn

    restore = replace_writes(monkeypatch, store, slow)
    first = asyncio.ensure_future(store.record_hand_out(SUBS[0], CLIENT, audit_detail={"n": 1}))
    await asyncio.sleep(0.01)  # the first batch is being written (held at slow())
    assert store._hand_out_writes is not None
    writing = set(store._hand_out_writes)
    second = asyncio.ensure_future(store.record_hand_out(SUBS[0], CLIENT, audit_detail={"n": 2}))
    await asyncio.sleep(0.01)  # the second batch waits for the first
    (waiting,) = store._hand_out_writes - writing
    waiting.cancel()  # e.g. the loop is shutting down
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    restore()
    await store.record_hand_out(SUBS[0], CLIENT, audit_detail={"n": 3})
    details = [e.detail["n"] for e in await store.list_audit(SUBS[0]) if e.kind == "token"]
    assert sorted(details) == [1, 3]
    assert asyncio.get_running_loop() not in (store._last_hand_outs or {})


@pytest.mark.postgres
async def test_a_batch_of_audit_rows_alone_commits_or_fails_as_one(pg_store: GrantStore) -> None:
    # Written without BEGIN and COMMIT on PostgreSQL (one statement, psycopg's one pipeline):
    # the server refusing its third row must take the first two with it. (SQLite's batch is a
    # transaction, and SQLite does not enforce a column's length.)
    store = pg_store
    # Users of this test alone: the schema is shared by the session's PostgreSQL tests.
    first, second = (secrets.token_hex(10) for _ in range(2))
    subs = [first, second, "9" * 300]  # longer than the sub column's 255
    outcomes = await asyncio.gather(
        *(store.record_hand_out(sub, CLIENT, audit_detail={"caller": sub[:4]}) for sub in subs),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert await store.list_audit(first) == await store.list_audit(second) == []
    await store.record_hand_out(first, CLIENT, audit_detail={"caller": "after"})
    events = [e for e in await store.list_audit(first) if e.kind == "token"]
    assert [e.detail["caller"] for e in events] == ["after"]


async def test_a_busy_keeper_lingers_so_more_hand_outs_share_a_write_an_idle_one_does_not(
    store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grantkeeper.store import hand_outs

    await sign_in(store, store_clock, sub=SUBS[0])

    def hand_out(n: int) -> Coroutine[Any, Any, None]:
        return store.record_hand_out(SUBS[0], CLIENT, audit_detail={"n": n})

    # Idle: a hand-out alone is written at once, however long a linger would be; so is the
    # next, since a batch of one is no sign of a busy keeper.
    monkeypatch.setattr(hand_outs, "LINGER_SECONDS", 30.0)
    monkeypatch.setattr(hand_outs, "BUSY_WITHIN_SECONDS", 30.0)
    await asyncio.wait_for(hand_out(0), 5)
    await asyncio.wait_for(hand_out(1), 5)
    # Busy: right after a batch of several, the next batch waits a little for company.
    monkeypatch.setattr(hand_outs, "LINGER_SECONDS", 0.2)
    await asyncio.gather(hand_out(2), hand_out(3), hand_out(4))
    writes = count_writes(store, monkeypatch)
    first = asyncio.ensure_future(hand_out(5))
    await asyncio.sleep(0.05)  # within the linger: it joins the first one's batch
    await asyncio.gather(first, hand_out(6))
    assert writes[0] == 1
    numbers = [e.detail["n"] for e in await store.list_audit(SUBS[0]) if e.kind == "token"]
    assert sorted(numbers) == list(range(7))


async def test_one_hand_out_with_its_last_use_is_no_sign_of_a_busy_keeper(
    store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows (the audit event and the last use) but one hand-out: the next one must not
    # linger.
    from grantkeeper.store import hand_outs

    await sign_in(store, store_clock, sub=SUBS[0])
    monkeypatch.setattr(hand_outs, "LINGER_SECONDS", 30.0)
    monkeypatch.setattr(hand_outs, "BUSY_WITHIN_SECONDS", 30.0)
    await store.record_hand_out(SUBS[0], CLIENT, used_at=store_clock.now(), audit_detail={"n": 0})
    await asyncio.wait_for(store.record_hand_out(SUBS[0], CLIENT, audit_detail={"n": 1}), 5)


async def test_a_hand_out_whose_detail_is_not_json_fails_alone(
    store: GrantStore, store_clock: ManualClock
) -> None:
    # psycopg serializes JSON while it sends a batch: a detail it cannot serialize, in the
    # middle of a batch, made every hand-out of the batch fail after those before it had
    # been committed (in autocommit). It now fails alone, before it joins a batch.
    await sign_in(store, store_clock, sub=SUBS[0])
    outcomes = await asyncio.gather(
        store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": "a"}),
        store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": object()}),
        store.record_hand_out(SUBS[0], CLIENT, audit_detail={"caller": "c"}),
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TypeError)
    assert outcomes[2] is None
    events = await store.list_audit(SUBS[0], kind="token")
    assert sorted(event.detail["caller"] for event in events) == ["a", "c"]
