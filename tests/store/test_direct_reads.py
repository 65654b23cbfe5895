"""The token read past SQLAlchemy's execution (store/compiled_reads.py): on sqlite3 directly and
on psycopg's own pool (store/pg_direct_pool.py), the same grant as the SQLAlchemy path gives,
whatever PostgreSQL's session time zone; and when the PostgreSQL path cannot serve a read, the
read still succeeds through SQLAlchemy and the direct path rests."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore, pg_direct_pool
from grantkeeper.store.pg_direct_pool import (
    DirectPathUnavailable,
    DirectPool,
)
from grantkeeper.store.store_core import GRANT_OF_CLIENT
from grantkeeper.store.tables import grants

from ..conftest import POSTGRES_URL, postgres_connect
from .helpers import CLIENT, raw_sql, sign_in

pytestmark = pytest.mark.anyio

SUB = "110169484474386276334"


async def test_the_direct_read_gives_what_sqlalchemy_gives_on_both_stores(
    store: GrantStore, store_clock: ManualClock
) -> None:
    OWN_SUB = "2" * 21
    assert await store.get_grant(OWN_SUB, CLIENT) is None
    await sign_in(store, store_clock, sub=OWN_SUB)
    assert await store.try_acquire_lease(OWN_SUB, CLIENT, "worker-1", timedelta(seconds=30))
    await store.record_hand_out(OWN_SUB, CLIENT, audit_detail={"caller": "test"})
    direct = await store.get_grant(OWN_SUB, CLIENT)
    async with raw_sql(store, write=False) as conn:
        row = (await conn.execute(GRANT_OF_CLIENT, {"sub": OWN_SUB, "client_id": CLIENT})).one()
    assert direct == store._codec.grant(row)
    assert direct is not None
    assert direct.lease_expires_at == store_clock.now() + timedelta(seconds=30)
    assert direct.created_at.tzinfo is UTC
    assert await store.get_grant(OWN_SUB, "another-client") is None


async def test_a_direct_read_binds_the_statements_own_values_and_typed_parameters(
    store: GrantStore, store_clock: ManualClock
) -> None:
    # A literal in the WHERE, a LIMIT and a datetime parameter (naive UTC text on SQLite):
    # the direct path binds them as SQLAlchemy does, so both paths find the same row.
    await sign_in(store, store_clock, sub="3" * 21)
    statement = (
        grants.select()
        .where(
            grants.c.sub == sa.bindparam("sub"),
            grants.c.status == "active",
            grants.c.updated_at >= sa.bindparam("since", type_=grants.c.updated_at.type),
        )
        .limit(1)
    )
    values = {"sub": "3" * 21, "since": store_clock.now() - timedelta(seconds=1)}
    direct = await store._read_first(statement, values)
    async with raw_sql(store, write=False) as conn:
        row = (await conn.execute(statement, values)).one()
    assert direct is not None
    assert dict(direct) == dict(row._mapping)
    later = {**values, "since": store_clock.now() + timedelta(seconds=1)}
    assert await store._read_first(statement, later) is None
    with pytest.raises(KeyError):
        store._compiled_reads[statement].parameters({"sub": "3" * 21})


async def test_a_direct_sqlite_read_without_tables_or_file_says_what_to_do(
    tmp_path: Path, store_clock: ManualClock
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    store = await GrantStore.open(
        f"sqlite:///{folder / 'keeper.db'}",
        KeyRing.from_strings([generate_key()]),
        store_clock,
        migrate=False,
    )
    try:
        with pytest.raises(StoreUnavailable, match="run: grantkeeper db upgrade"):
            await store.get_grant(SUB, CLIENT)
        assert store._inline is not None
        store._inline.close()  # no kept connection: the next read must open one
        shutil.rmtree(folder)
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await store.get_grant(SUB, CLIENT)
    finally:
        await store.close()


@pytest.fixture
def direct_calls(pg_store: GrantStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each direct read did: "served" or "fell back"."""
    direct = pg_store._direct
    assert direct is not None
    calls: list[str] = []
    real = direct.first

    async def counted(*args: Any) -> Any:
        try:
            found = await real(*args)
        except DirectPathUnavailable:
            calls.append("fell back")
            raise
        calls.append("served")
        return found

    monkeypatch.setattr(direct, "first", counted)
    return calls


async def _through_sqlalchemy(store: GrantStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(store, "_direct", None)
        return await store.get_grant(SUB, CLIENT)


@pytest.mark.postgres
async def test_the_direct_read_gives_the_grant_the_sqlalchemy_path_gives(
    pg_store: GrantStore,
    store_clock: ManualClock,
    direct_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    leased = await store.try_acquire_lease(SUB, CLIENT, "worker-1", timedelta(seconds=30))
    assert leased is not None
    direct = await store.get_grant(SUB, CLIENT)
    assert direct_calls == ["served"]
    assert direct == await _through_sqlalchemy(store, monkeypatch)
    assert direct is not None
    assert direct.access_token == "ya29.access-token-one"
    assert direct.lease_owner == "worker-1"
    assert direct.lease_expires_at == store_clock.now() + timedelta(seconds=30)
    for field in dataclasses.fields(direct):
        value = getattr(direct, field.name)
        if hasattr(value, "tzinfo") and value is not None:
            assert value.tzinfo is UTC, field.name


@pytest.mark.postgres
async def test_timestamps_are_utc_whatever_the_sessions_time_zone(
    postgres_schema: str, store_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg answers a timestamptz in the session's zone; the store answers UTC, as the
    SQLAlchemy path does."""
    options = f"-c%20search_path%3D{postgres_schema}%20-c%20TimeZone%3DPacific/Chatham"
    url = f"{POSTGRES_URL}?options={options}"
    store = await GrantStore.open(url, KeyRing.from_strings([generate_key()]), store_clock)
    try:
        await sign_in(store, store_clock, sub=SUB)
        direct = await store.get_grant(SUB, CLIENT)
        assert direct is not None
        assert direct.access_token_expires_at == store_clock.now() + timedelta(hours=1)
        assert direct.access_token_expires_at.tzinfo is UTC
        assert direct == await _through_sqlalchemy(store, monkeypatch)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_read_the_direct_path_cannot_serve_goes_through_sqlalchemy(
    pg_store: GrantStore,
    store_clock: ManualClock,
    direct_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    assert (await store.get_grant(SUB, CLIENT)) is not None
    assert direct_calls == ["served"]
    # The server drops every connection of this store's direct pool (a restart, an
    # administrator); other tests' stores on the same server keep theirs.
    assert store._direct is not None
    assert store._direct._pool is not None
    pids = [conn.info.backend_pid for conn in store._direct._pool._pool]
    assert pids
    with postgres_connect() as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(pg_direct_pool, "BACK_OFF_SECONDS", 60.0)
    for _ in range(3):
        grant = await store.get_grant(SUB, CLIENT)
        assert grant is not None
        assert grant.access_token == "ya29.access-token-one"
    # One read found the dead connection and fell back; the others did not wait on the pool.
    assert direct_calls == ["served", "fell back", "fell back", "fell back"]
    # Meanwhile every connection of the direct pool was tested and the dead ones replaced.
    assert store._direct is not None
    if store._direct._checking is not None:
        await store._direct._checking
    monkeypatch.setattr(store._direct, "_resting_until", 0.0)
    assert (await store.get_grant(SUB, CLIENT)) is not None
    assert direct_calls[-1] == "served"


@pytest.mark.postgres
async def test_an_unreachable_direct_pool_costs_one_checkout_wait_then_rests(
    pg_store: GrantStore,
    store_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = pg_store
    await sign_in(store, store_clock)
    # Nothing listens on port 1: the pool never gets a connection.
    broken = DirectPool(store._engine.url.set(port=1))
    monkeypatch.setattr(pg_direct_pool, "CHECKOUT_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(store, "_direct", broken)
    try:
        with caplog.at_level("INFO", logger="grantkeeper.store"):
            for _ in range(3):
                assert (await store.get_grant(SUB, CLIENT)) is not None
        rests = [r for r in caplog.records if "direct PostgreSQL pool" in r.getMessage()]
        assert [r.getMessage().split(" rests ")[0] for r in rests] == [
            "the direct PostgreSQL pool grantkeeper-direct-reads"
        ]
        assert [r.getMessage().split(" after ")[1] for r in rests] == [
            "PoolTimeout; its calls take the SQLAlchemy path"
        ]
    finally:
        await broken.close()


@pytest.mark.postgres
async def test_closing_the_store_closes_the_direct_pool(
    postgres_schema: str, store_clock: ManualClock
) -> None:
    store = await GrantStore.open(
        POSTGRES_URL, KeyRing.from_strings([generate_key()]), store_clock, schema=postgres_schema
    )
    await sign_in(store, store_clock, sub="1" * 21)
    await store.get_grant("1" * 21, CLIENT)
    direct = store._direct
    assert direct is not None
    assert direct._pool is not None
    pool = direct._pool
    await store.close()
    assert direct._pool is None
    assert pool.closed
