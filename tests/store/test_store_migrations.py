"""Migrations from an empty database, concurrently, matching the models; `grantkeeper db`."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing
from grantkeeper.store import GrantStore, migrate
from grantkeeper.store.engine import create_engine, normalize_url
from grantkeeper.store.migrate import alembic_config, head_revision
from grantkeeper.store.tables import metadata

from ..cli_in_process import invoke
from .helpers import OpensStores, raw_sql

pytestmark = pytest.mark.anyio

STORE_TABLES = {
    "gk_users",
    "gk_grants",
    "gk_audit_events",
    "gk_signin_replays",
    "gk_alembic_version",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str | None]]:
    """A database nobody has migrated: a new SQLite file or a new, not yet created schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'grants.sqlite3'}", None
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"gk_fresh_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            yield url, schema
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_migrations_from_empty_concurrently_and_idempotently(
    empty_database: tuple[str, str | None], store_keyring: KeyRing
) -> None:
    url, schema = empty_database
    clock = ManualClock()
    stores = [await GrantStore.open(url, store_keyring, clock, schema=schema) for _ in range(3)]
    try:
        assert await stores[0].current_revision() is None
        # Three processes starting at once against an empty database.
        async with anyio.create_task_group() as group:
            for store in stores:
                group.start_soon(store.migrate)
        assert await stores[1].current_revision() == head_revision()
        await stores[2].migrate()  # again: nothing to do
        assert await stores[2].current_revision() == head_revision()
        assert await stores[0].list_users() == []
    finally:
        for store in stores:
            await store.close()


async def test_the_migrations_build_exactly_the_models(
    store: GrantStore, store_target: OpensStores
) -> None:
    def differences(connection: sa.Connection) -> list[object]:
        def ours(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
            # Tables other features keep in this database are theirs to check.
            return not (type_ == "table" and reflected and other is None)

        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": ours}
        )
        return list(compare_metadata(context, metadata))

    async with raw_sql(store, write=False) as conn:
        names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        diff = await conn.run_sync(differences)
    assert names >= STORE_TABLES
    assert diff == []


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", "db", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_db_cli_upgrade_and_current(empty_database: tuple[str, str | None]) -> None:
    url, schema = empty_database
    where = ["--database-url", url] + (["--schema", schema] if schema else [])

    # The check in-process (the runner ends it as the script would); the upgrade as the script.
    before = invoke(os.environ, "db", "current", *where, "--check")
    assert before.returncode == 1, before.stderr
    assert "none (empty database)" in before.stdout
    assert "grantkeeper db upgrade" in before.stderr

    upgraded = run_cli("upgrade", *where)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"at revision {head_revision()} (head)" in upgraded.stdout

    after = invoke(os.environ, "db", "current", *where, "--check")
    assert after.returncode == 0, after.stderr
    assert f"revision {head_revision()}; newest {head_revision()}" in after.stdout


@pytest.mark.slow
def test_db_cli_reads_the_settings(tmp_path: Path) -> None:
    result = run_cli("upgrade", env={"GRANTKEEPER_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "grantkeeper.sqlite3").exists()
    # A migration needs no encryption key: none was created.
    assert not (tmp_path / "data" / "encryption.key").exists()


@pytest.mark.slow
def test_db_cli_unreachable_database_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("upgrade", "--database-url", f"postgresql://gk:hunter2@127.0.0.1:{port}/x")
    assert result.returncode == 1
    assert result.stderr.startswith("store_unavailable: ")
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


async def test_every_migration_can_be_undone_and_done_again(
    empty_database: tuple[str, str | None],
) -> None:
    # An operator rolling a release back runs Alembic's downgrade: each revision's downgrade
    # must leave the database as the revision before built it, down to nothing.
    url, schema = empty_database
    engine = create_engine(normalize_url(url), schema=schema)

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))

    async def downgrade(target: str) -> None:
        config = alembic_config()

        def run(connection: sa.Connection) -> None:
            config.attributes["connection"] = connection
            command.downgrade(config, target)

        async with engine.begin() as conn:
            await conn.run_sync(run)

    try:
        await migrate.upgrade(engine, schema=schema)
        full = await tables()
        assert full >= STORE_TABLES
        await downgrade("0005")
        assert "gk_webhook_outbox" not in await tables()
        await downgrade("base")
        assert await tables() <= {"gk_alembic_version"}
        assert await migrate.current_revision(engine, schema) is None
        await migrate.upgrade(engine, schema=schema)
        assert await tables() == full
        assert await migrate.current_revision(engine, schema) == head_revision()
    finally:
        await engine.dispose()
