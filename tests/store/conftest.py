"""Fixtures of the store tests (the ``store`` fixture on both databases is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.store import GrantStore

from ..conftest import POSTGRES_URL, empty_schema


@pytest.fixture
async def pg_store(postgres_schema: str, store_clock: ManualClock) -> AsyncIterator[GrantStore]:
    """A PostgreSQL store of its own on the test schema (its own pools, its tables empty), for
    the tests of the PostgreSQL path alone."""
    empty_schema(postgres_schema)
    store = await GrantStore.open(
        POSTGRES_URL, KeyRing.from_strings([generate_key()]), store_clock, schema=postgres_schema
    )
    try:
        yield store
    finally:
        await store.close()
