"""The token read past SQLAlchemy's execution (store/compiled_reads.py): on sqlite3 directly and
on psycopg's own pool (store/pg_direct_reads.py), the same grant as the SQLAlchemy path gives,
whatever PostgreSQL's session time zone; and when the PostgreSQL path cannot serve a read, the
read still succeeds through SQLAlchemy and the direct path rests."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

import pytest

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.store import GrantStore, pg_direct_reads
from grantkeeper.store.pg_direct_reads import (
    APPLICATION_NAME,
    DirectPathUnavailable,
    DirectReads,
)
from grantkeeper.store.store_core import GRANT_OF_CLIENT

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


@pytest.fixture
async def pg_store(postgres_schema: str, store_clock: ManualClock) -> AsyncIterator[GrantStore]:
    store = await GrantStore.open(
        POSTGRES_URL, KeyRing.from_strings([generate_key()]), store_clock, schema=postgres_schema
    )
    try:
        yield store
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
    # The server drops every connection of the direct pool (a restart, an administrator).
    with postgres_connect() as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchall()
    assert killed
    monkeypatch.setattr(pg_direct_reads, "BACK_OFF_SECONDS", 60.0)
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
    broken = DirectReads(store._engine.url.set(port=1))
    monkeypatch.setattr(pg_direct_reads, "CHECKOUT_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(store, "_direct", broken)
    try:
        with caplog.at_level("INFO", logger="grantkeeper.store"):
            for _ in range(3):
                assert (await store.get_grant(SUB, CLIENT)) is not None
        rests = [r for r in caplog.records if "direct PostgreSQL reads rest" in r.getMessage()]
        assert [r.getMessage().split(" after ")[1] for r in rests] == [
            "PoolTimeout; reads take the SQLAlchemy path"
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
