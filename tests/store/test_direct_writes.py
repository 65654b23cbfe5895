"""PostgreSQL: the hot paths' writes on psycopg's own pool (store/pg_direct_writes.py). Every hot
path takes it; it falls back to SQLAlchemy only before sending anything; a connection lost
after that is StoreUnavailable, not a second attempt; an idle connection the server dropped is
replaced at the checkout; errors are SQLAlchemy's, without parameters; a failed transaction
leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from grantkeeper.clock import ManualClock
from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore, pg_direct_pool, store_core
from grantkeeper.store.audit_log import AUDIT_INSERT, audit_row
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.pg_direct_pool import APPLICATION_NAME, DirectPool
from grantkeeper.store.pg_direct_writes import DirectStatementRefused
from grantkeeper.store.signin_replay_cache import ReplayEntry
from grantkeeper.store.tables import audit_events, webhook_outbox
from grantkeeper.store.webhook_outbox import OUTBOX_INSERT, OutboxMessage

from ..conftest import POSTGRES_URL, postgres_connect
from .helpers import CLIENT, profile, raw_sql, sign_in

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SUB = "110169484474386276334"


@pytest.fixture
def through_sqlalchemy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The store's transactions that took the SQLAlchemy path, as their options."""
    taken: list[dict[str, Any]] = []
    real = store_core.transaction

    def counted(engine: Any, **options: Any) -> Any:
        taken.append(options)
        return real(engine, **options)

    monkeypatch.setattr(store_core, "transaction", counted)
    return taken


def direct_pids(store: GrantStore, *, reads: bool = True) -> list[int]:
    """The backend pids of the idle connections of the store's direct pools (the writes' and,
    with ``reads``, the reads'); this store's alone: other tests run their own stores on the
    same server."""
    assert store._direct is not None
    assert store._direct_writes is not None
    pools = [store._direct_writes._pool._pool] + ([store._direct._pool] if reads else [])
    return [conn.info.backend_pid for pool in pools if pool is not None for conn in pool._pool]


def terminate(pids: list[int]) -> None:
    with postgres_connect() as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@asynccontextmanager
async def grant_row_held(schema: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Another session, in a transaction that holds the row of SUB's grant (``FOR UPDATE``)
    until it commits or the block ends."""
    other = await psycopg.AsyncConnection.connect(POSTGRES_URL, options=f"-c search_path={schema}")
    try:
        await other.execute("SELECT 1 FROM gk_grants WHERE sub = %s FOR UPDATE", (SUB,))
        yield other
    finally:
        await other.rollback()
        await other.close()


@pytest.fixture
def idle_for_long(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every direct connection counts as idle for a minute (due for its ping)."""
    monkeypatch.setattr(pg_direct_pool, "PING_AFTER_IDLE_SECONDS", -60.0)
    return


async def test_every_hot_write_takes_the_direct_path(
    pg_store: GrantStore, store_clock: ManualClock, through_sqlalchemy: list[dict[str, Any]]
) -> None:
    store = pg_store
    code = "c0de" * 16
    assert await store.claim_signin(code, timedelta(minutes=1))  # and the purge of old answers
    record = await store.record_sign_in(
        profile(SUB),
        CLIENT,
        {"openid"},
        "1//0g-refresh",
        "ya29.access",
        store_clock.now() + timedelta(hours=1),
        replay=ReplayEntry(code, timedelta(minutes=10), lambda r: "answer"),
    )
    assert await store.mark_revoked(SUB, CLIENT, "invalid_grant") == 1
    writes_before = len(through_sqlalchemy)
    # A reactivating sign-in writes its notification (the outbox) in the same transaction.
    reactivated = await store.record_sign_in(
        profile(SUB),
        CLIENT,
        {"openid"},
        "1//0g-refresh-2",
        "ya29.access-2",
        store_clock.now() + timedelta(hours=1),
        outbox=lambda r: [
            OutboxMessage("evt-recovered", "grant.recovered", "{}", store_clock.now())
        ],
    )
    assert reactivated.reactivated
    leased = await store.try_acquire_lease(SUB, CLIENT, "worker-1", timedelta(seconds=30))
    assert leased is not None
    assert await store.save_refreshed(
        SUB,
        CLIENT,
        leased.version,
        "ya29.access-3",
        store_clock.now() + timedelta(hours=1),
        owner="worker-1",
        audit_detail={"why": "test"},
        hand_out_detail={"caller": "test"},
        clear_cooldown=True,
    )
    assert await store.try_acquire_lease(SUB, CLIENT, "worker-2", timedelta(seconds=30))
    assert await store.release_lease(SUB, CLIENT, "worker-2")
    await store.record_hand_out(SUB, CLIENT, audit_detail={"caller": "a"})
    await store.record_hand_out(SUB, CLIENT, used_at=store_clock.now(), audit_detail={"n": 1})
    assert [o for o in through_sqlalchemy[writes_before:] if o["write"]] == []
    assert len([o for o in through_sqlalchemy if o["write"]]) == 1  # mark_revoked's
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert (grant.access_token, grant.version, grant.lease_owner) == ("ya29.access-3", 4, None)
    assert grant.last_used_at == store_clock.now()
    assert record.grant.version == 1
    kinds = [event.kind for event in await store.list_audit(SUB)]  # newest first
    assert kinds == ["token", "token", "token", "refresh", "sign_in", "sign_in"]
    async with raw_sql(store, write=False) as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox))).scalar()


async def test_a_write_without_a_direct_connection_goes_through_sqlalchemy(
    pg_store: GrantStore,
    store_clock: ManualClock,
    through_sqlalchemy: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = pg_store
    # Nothing listens on port 1: the direct pool never gets a connection.
    broken = DirectPool(store._engine.url.set(port=1))
    monkeypatch.setattr(pg_direct_pool, "CHECKOUT_TIMEOUT_SECONDS", 0.2)
    assert store._direct_writes is not None
    monkeypatch.setattr(store._direct_writes, "_pool", broken)
    try:
        await sign_in(store, store_clock)
        assert await store.try_acquire_lease(SUB, CLIENT, "worker-1", timedelta(seconds=30))
        assert {"write": True, "one_statement": True} in through_sqlalchemy  # claims, leases
        assert {"write": True, "one_statement": False} in through_sqlalchemy  # the sign-in
        grant = await store.get_grant(SUB, CLIENT)
        assert grant is not None
        assert grant.lease_owner == "worker-1"
    finally:
        await broken.close()


async def test_a_connection_lost_after_sending_fails_the_write_without_a_second_attempt(
    pg_store: GrantStore, store_clock: ManualClock, through_sqlalchemy: list[dict[str, Any]]
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    before = len(through_sqlalchemy)

    async def audit_twice_losing_the_connection_between() -> None:
        async with store._write(direct=True) as conn:
            await conn.execute(
                AUDIT_INSERT, audit_row(store_clock.now(), "test", SUB, CLIENT, "ok", {"n": 1})
            )
            # The server drops this very connection mid-transaction.
            [pid] = (
                await conn.execute(hot(sa.select(sa.func.pg_backend_pid().label("pid"))), {})
            ).one()
            terminate([pid])
            await conn.execute(
                AUDIT_INSERT, audit_row(store_clock.now(), "test", SUB, CLIENT, "ok", {"n": 2})
            )

    with pytest.raises(StoreUnavailable, match="unavailable"):
        await audit_twice_losing_the_connection_between()
    assert through_sqlalchemy[before:] == []  # not sent again through SQLAlchemy
    assert [e for e in await store.list_audit(SUB) if e.kind == "test"] == []
    # The pool dropped the dead connection: the next write works, on the direct path.
    before = len(through_sqlalchemy)
    await store.record_hand_out(SUB, CLIENT, audit_detail={"after": "loss"})
    assert through_sqlalchemy[before:] == []


async def test_idle_connections_the_server_dropped_are_replaced_at_the_checkout(
    pg_store: GrantStore,
    store_clock: ManualClock,
    through_sqlalchemy: list[dict[str, Any]],
    idle_for_long: None,
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    await store.get_grant(SUB, CLIENT)
    pids = direct_pids(store)
    assert pids
    with postgres_connect() as admin:
        names = admin.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
        ).fetchall()
    assert names == [(APPLICATION_NAME,)]
    terminate(pids)  # a database restart, as far as these connections can tell
    before = len(through_sqlalchemy)
    for n in range(3):
        await store.record_hand_out(SUB, CLIENT, audit_detail={"n": n})
        assert await store.try_acquire_lease(SUB, CLIENT, "worker-1", timedelta(seconds=30))
    assert len(through_sqlalchemy) == before
    assert not set(direct_pids(store, reads=False)) & set(pids)


async def test_errors_are_sqlalchemys_without_parameters_and_roll_back(
    pg_store: GrantStore, store_clock: ManualClock
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    row = {
        "id": "evt-1",
        "type": "grant.recovered",
        "body": "{}",
        "created_at": store_clock.now(),
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": store_clock.now(),
    }
    async with store._write(direct=True) as conn:
        await conn.execute(OUTBOX_INSERT, row)

    async def audit_then_insert_the_same_message_again() -> None:
        async with store._write(direct=True) as conn:
            secret_detail = {"secret": "ya29.must-not-show"}
            await conn.execute(
                AUDIT_INSERT, audit_row(store_clock.now(), "test", SUB, CLIENT, "ok", secret_detail)
            )
            await conn.execute(OUTBOX_INSERT, row)

    with pytest.raises(exc.IntegrityError) as raised:
        await audit_then_insert_the_same_message_again()
    # The driver's own words (PostgreSQL's DETAIL names the duplicate key) and the SQL, as
    # SQLAlchemy gives them; never the parameters.
    assert "already exists" in str(raised.value)
    assert "ya29.must-not-show" not in str(raised.value)
    assert "[parameters:" not in str(raised.value)
    assert [e for e in await store.list_audit(SUB) if e.kind == "test"] == []

    async def audit_at_a_naive_time() -> None:
        async with store._write_one(direct=True) as conn:
            naive = audit_row(store_clock.now().replace(tzinfo=None), "t", SUB, CLIENT, "ok", {})
            await conn.execute(AUDIT_INSERT, naive)

    # A naive datetime is refused before anything is sent, as SQLAlchemy refuses it.
    with pytest.raises(exc.StatementError, match="timezone-aware"):
        await audit_at_a_naive_time()


async def test_a_statement_not_built_once_is_refused_before_it_is_sent(
    pg_store: GrantStore, store_clock: ManualClock
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    with pytest.raises(DirectStatementRefused, match="build it once"):
        async with store._write(direct=True) as conn:
            await conn.execute(
                audit_events.insert(),
                audit_row(store_clock.now(), "test", SUB, CLIENT, "ok", {}),
            )
    assert [e for e in await store.list_audit(SUB) if e.kind == "test"] == []


async def test_a_sign_in_and_forgetting_the_same_user_do_not_deadlock(
    pg_store: GrantStore, store_clock: ManualClock, postgres_schema: str
) -> None:
    # Both lock the user's row first, then the grant's. (forget_user deleted the grants first:
    # queued behind it on the grant's row, a sign-in holding the user's row deadlocked it.)
    store = pg_store
    await sign_in(store, store_clock)
    async with grant_row_held(postgres_schema) as holder:
        # Someone holds the grant's row, so both calls below queue behind it in this order.
        forgetting = asyncio.ensure_future(store.forget_user(SUB))
        await asyncio.sleep(0.2)
        signing_in = asyncio.ensure_future(sign_in(store, store_clock, access_token="ya29.again"))
        await asyncio.sleep(0.2)
        await holder.commit()
        forgotten, record = await asyncio.gather(forgetting, signing_in)
    assert forgotten
    assert record.new_user  # the sign-in came after the user was forgotten
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.access_token == "ya29.again"


async def test_a_call_cancelled_during_the_checkouts_ping_gives_the_connection_back(
    pg_store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    await store.get_grant(SUB, CLIENT)
    pinging = asyncio.Event()

    async def a_ping_that_hangs(_conn: Any) -> bool:
        pinging.set()
        await asyncio.Event().wait()
        return True  # pragma: no cover

    monkeypatch.setattr(pg_direct_pool, "_alive", a_ping_that_hangs)
    # More cancelled calls than either pool has connections: none may keep one.
    for n in range(2 * pg_direct_pool.MAX_WRITE_CONNECTIONS):
        pinging.clear()
        call = (
            store.get_grant(SUB, CLIENT)
            if n % 2
            else store.try_acquire_lease(SUB, CLIENT, "w", timedelta(seconds=1))
        )
        task = asyncio.ensure_future(call)
        await asyncio.wait_for(pinging.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    monkeypatch.undo()
    assert store._direct is not None
    assert store._direct_writes is not None
    for direct in (store._direct, store._direct_writes._pool):
        assert direct._pool is not None
        stats = direct._pool.get_stats()
        assert stats.get("pool_available", 0) == stats["pool_size"]


async def test_a_write_postgresql_undid_in_a_deadlock_says_so(
    pg_store: GrantStore, store_clock: ManualClock, postgres_schema: str
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    async with grant_row_held(postgres_schema) as other:
        # Another session holds the grant's row; the sign-in locks the user's row and waits
        # for the grant's; the other session then asks for the user's row: a deadlock, which
        # the sign-in (waiting first) detects and is undone for.
        signing_in = asyncio.ensure_future(sign_in(store, store_clock, access_token="ya29.b"))
        await asyncio.sleep(0.3)
        await other.execute("SELECT 1 FROM gk_users WHERE sub = %s FOR UPDATE", (SUB,))
        with pytest.raises(StoreUnavailable) as raised:
            await signing_in
    assert raised.value.message.endswith(
        "rolled this write back to resolve a conflict with another one (DeadlockDetected); "
        "retry it."
    )
    assert raised.value.public_detail == (
        "The grant store undid this write to resolve a conflict; retry it."
    )
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.access_token == "ya29.access-token-one"  # nothing of the undone sign-in


async def test_several_audit_rows_are_one_insert_and_all_or_nothing(
    pg_store: GrantStore, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    executemany = psycopg.AsyncCursor.executemany
    pipelined: list[int] = []

    async def counted(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> None:
        rows = list(params_seq)
        pipelined.append(len(rows))
        await executemany(self, query, rows, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "executemany", counted)

    def rows(kind: str, count: int, **detail: Any) -> list[dict[str, Any]]:
        at = store_clock.now()
        return [
            audit_row(at, kind, SUB, CLIENT, f"ok-{i}", {"i": i, **detail}) for i in range(count)
        ]

    async def write(batch: list[dict[str, Any]]) -> None:
        async with store._write_one(direct=True) as conn:
            await conn.execute(AUDIT_INSERT, batch)

    await write(rows("several", 5, note="naïve ☃"))
    await write(rows("many", 40))  # more than one statement takes: an executemany
    assert pipelined == [40]
    several = sorted(
        (e for e in await store.list_audit(SUB, limit=100) if e.kind == "several"),
        key=lambda e: e.outcome,
    )
    assert [(e.outcome, e.detail) for e in several] == [
        (f"ok-{i}", {"i": i, "note": "naïve ☃"}) for i in range(5)
    ]
    assert all(e.at == store_clock.now() for e in several)
    assert len([e for e in await store.list_audit(SUB, limit=100) if e.kind == "many"]) == 40

    # PostgreSQL refuses the third row (an outcome longer than its column): none is written.
    broken = rows("broken", 5)
    broken[2]["outcome"] = "x" * 33
    with pytest.raises(exc.DBAPIError, match="too long"):
        await write(broken)
    assert [e for e in await store.list_audit(SUB, limit=100) if e.kind == "broken"] == []
    assert pipelined == [40]
