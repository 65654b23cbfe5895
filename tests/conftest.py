"""Fixtures shared across the suite."""

from __future__ import annotations

# --- grant store on both backends (tests/store; reusable by keeper and web tests) ------------
# `store` runs each test that uses it on SQLite (a file in tmp_path) and on PostgreSQL
# (127.0.0.1:5432, database `test`, one schema per test session, truncated before each test
# and dropped at the end). PostgreSQL down: skipped locally, a failure when CI=true.
import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from grantkeeper.clock import Clock, ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.emulator import EmulatorHandle
from grantkeeper.keeper import Keeper
from grantkeeper.store import GrantStore
from grantkeeper.store import migrate as store_migrate
from grantkeeper.store.engine import create_engine, normalize_url

from .app_world import World, make_world, no_wait, quick_provider


@pytest.fixture(autouse=True)
def _quick_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick loop (``make test-quick``: ``-m "not slow"``) starts no process: a process
    costs a second or more of start-up, so a test that starts one is marked ``slow``."""
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(
        self: subprocess.Popen[bytes], args: object, *rest: object, **options: object
    ) -> None:
        raise AssertionError(
            f"this test starts a process ({args!r}) but is not marked slow; "
            "add pytest.mark.slow so the quick loop stays quick"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


POSTGRES_URL = os.environ.get(
    "GRANTKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORE_EPOCH = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's store lives; ``open`` gives further, independent connections to it (as a
    second process would have)."""

    backend: str
    url: str
    schema: str | None

    async def open(self, keyring: KeyRing, clock: Clock) -> GrantStore:
        return await GrantStore.open(self.url, keyring, clock, schema=self.schema, migrate=True)


def postgres_connect() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the test database, or skip/fail as the CI rule says."""
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {type(error).__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL, once it answers (skip locally / fail on CI otherwise)."""
    postgres_connect().close()
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A migrated schema of its own for this test session, dropped at the end."""
    schema = f"gk_test_{os.getpid()}_{secrets.token_hex(3)}"
    with postgres_connect() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

        async def upgrade() -> None:
            engine = create_engine(normalize_url(POSTGRES_URL), schema=schema)
            try:
                await store_migrate.upgrade(engine, schema=schema)
            finally:
                await engine.dispose()

        try:
            asyncio.run(upgrade())
            yield schema
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once per session; each test's store starts as a copy of it
    (the same file the migrations would make, without running them for every test)."""
    path = tmp_path_factory.mktemp("template") / "grants.sqlite3"

    async def upgrade() -> None:
        engine = create_engine(normalize_url(f"sqlite:///{path}"))
        try:
            await store_migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(upgrade())
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "grants.sqlite3"
        shutil.copyfile(template, path)
        path.chmod(0o600)
        return StoreTarget("sqlite", f"sqlite:///{path}", None)
    schema: str = request.getfixturevalue("postgres_schema")
    empty_schema(schema)
    return StoreTarget("postgres", POSTGRES_URL, schema)


def empty_schema(schema: str) -> None:
    """Empty every table of the test session's schema (a test starts on an empty store)."""
    with postgres_connect() as conn:
        # Every table the migrations made (other features add theirs), not Alembic's own.
        names = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
            (schema, store_migrate.VERSION_TABLE),
        ).fetchall()
        tables = ", ".join(f'"{schema}"."{name}"' for (name,) in names)
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_keyring() -> KeyRing:
    return KeyRing.from_strings([generate_key("primary")])


@pytest.fixture
def store_clock() -> ManualClock:
    return ManualClock(STORE_EPOCH)


@pytest.fixture
async def store(
    anyio_backend: str, store_target: StoreTarget, store_keyring: KeyRing, store_clock: ManualClock
) -> AsyncIterator[GrantStore]:
    """A migrated, empty :class:`GrantStore`, once on SQLite and once on PostgreSQL."""
    opened = await store_target.open(store_keyring, store_clock)
    try:
        yield opened
    finally:
        await opened.close()


# --- an app at the emulator and a keeper on the store under test (every folder) ---------------
# `emulator` is grantkeeper's own pytest fixture (grantkeeper.emulator.testing): one server for
# the session, reset for each test.


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    return make_world(emulator, tmp_path)


@pytest.fixture
async def keeper(
    anyio_backend: str, world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> AsyncIterator[Keeper]:
    """A keeper on the store under test, sharing the emulator's clock (time moves for both);
    neither its provider retries nor its polls of the store sleep."""
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    provider = quick_provider(world.settings, clock)
    try:
        async with Keeper(
            world.settings, clock=clock, store=store, provider=provider, sleep=no_wait
        ) as opened:
            yield opened
    finally:
        await provider.aclose()
        await store.close()
