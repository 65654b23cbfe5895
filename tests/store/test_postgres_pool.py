"""PostgreSQL's pool: a connection idle for a second or more is pinged before use, so one the
server dropped (a restart, an idle timeout, an administrator) is replaced instead of failing
the request; a connection in steady use is not pinged."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore
from grantkeeper.store import engine as store_engine

from ..conftest import postgres_connect

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _backend_pid(store: GrantStore) -> int:
    async with store._read() as conn:
        pid: int = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def test_a_connection_the_server_dropped_while_idle_is_replaced_not_failed(
    pg_store: GrantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    before = await _backend_pid(store)
    with postgres_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (before,))
    # The pool still holds the dead connection. Used again at once it would fail (the
    # next request would answer 503); idle a while, it is pinged and replaced.
    monkeypatch.setattr(store_engine, "PING_AFTER_IDLE_SECONDS", 0.2)
    await asyncio.sleep(0.3)
    after = await _backend_pid(store)
    assert after != before
    await store.list_audit(None, limit=1)  # and the store answers


async def test_a_connection_in_steady_use_is_not_pinged(
    pg_store: GrantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    pings = 0
    dialect = store._engine.sync_engine.dialect
    original = dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        nonlocal pings
        pings += 1
        return original(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    for _ in range(20):
        await store.list_audit(None)
    assert pings == 0
    monkeypatch.setattr(store_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    await store.list_audit(None)
    assert pings == 1


async def test_a_dropped_connection_used_within_the_second_answers_unavailable_once(
    pg_store: GrantStore,
) -> None:
    """What the ping no longer covers, and why that is safe: the failure is a clean
    StoreUnavailable (a 503 with Retry-After), and SQLAlchemy then replaces the pool, so the
    very next transaction works."""
    store = pg_store
    before = await _backend_pid(store)
    with postgres_connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (before,))
    with pytest.raises(StoreUnavailable):
        await store.list_audit(None)
    assert await _backend_pid(store) != before
