"""grantkeeper in an app's own database: its tables are ``gk_*``, its history is
``gk_alembic_version``; a database from before the prefix is adopted; collisions and a misspelt
schema fail in one line."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.errors import ConfigurationError
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore
from grantkeeper.store import migrate as store_migrate
from grantkeeper.store.engine import create_engine, normalize_url

from .helpers import CLIENT, DRIVE, OPENID, profile

pytestmark = pytest.mark.anyio

APP_TABLES = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(320), password_hash TEXT)",
    "CREATE TABLE grants (id INTEGER PRIMARY KEY, what TEXT)",
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
    "INSERT INTO users (id, email) VALUES (1, 'ada@example.com')",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.sqlite3'}", None
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"gk_app_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield url, schema
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _execute(url: str, schema: str | None, *statements: str) -> None:
    engine = create_engine(normalize_url(url), schema=schema)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _tables(url: str, schema: str | None) -> set[str]:
    engine = create_engine(normalize_url(url), schema=schema)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names(schema=schema)))
    finally:
        await engine.dispose()


async def test_an_apps_users_table_and_alembic_history_are_left_alone(
    database: tuple[str, str | None], store_keyring: KeyRing
) -> None:
    url, schema = database
    await _execute(url, schema, *APP_TABLES)
    store = await GrantStore.open(url, store_keyring, ManualClock(), schema=schema, migrate=True)
    try:
        await store.record_sign_in(profile(), CLIENT, OPENID | {DRIVE}, "1//rt", "ya29.at", None)
        assert [u.sub for u in await store.list_users()] == [profile().sub]
        assert await store.current_revision() == store_migrate.head_revision()
    finally:
        await store.close()
    engine = create_engine(normalize_url(url), schema=schema)
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
            users = (await conn.execute(sa.text("SELECT email FROM users"))).all()
    finally:
        await engine.dispose()
    assert version == [("ae1027a6acf",)]  # the app's own migration history, untouched
    assert users == [("ada@example.com",)]
    assert {"gk_users", "gk_grants", "gk_alembic_version", "users", "grants"} <= await _tables(
        url, schema
    )


async def test_a_database_migrated_before_the_prefix_is_adopted_with_its_grants(
    database: tuple[str, str | None], store_keyring: KeyRing
) -> None:
    url, schema = database
    engine = create_engine(normalize_url(url), schema=schema)
    config = store_migrate.alembic_config()
    # As versions before 0004 did: bare table names, history in alembic_version.
    config.attributes["version_table"] = "alembic_version"
    config.attributes["legacy_table_names"] = True

    def to_0003(connection: sa.Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to_0003)
            now = "2025-03-01 09:00:00"
            await conn.execute(
                sa.text(
                    "INSERT INTO users (sub, email, created_at, updated_at) "
                    f"VALUES ('110', 'ada@example.com', '{now}', '{now}')"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO grants (sub, client_id, scopes, status, version, created_at, "
                    f"updated_at) VALUES ('110', '{CLIENT}', 'openid', 'active', 1, '{now}', "
                    f"'{now}')"
                )
            )
        assert await store_migrate.current_revision(engine, schema) == "0003"
    finally:
        await engine.dispose()

    store = await GrantStore.open(url, store_keyring, ManualClock(), schema=schema, migrate=True)
    try:
        assert await store.current_revision() == store_migrate.head_revision()
        grant = await store.get_grant("110", CLIENT)
        assert grant is not None
        assert grant.scopes == frozenset({"openid"})
        # Sign-ins keep working on the renamed tables (the foreign key followed the rename).
        await store.record_sign_in(profile("111"), CLIENT, OPENID, "1//rt", "ya29", None)
        assert {u.sub for u in await store.list_users()} == {"110", "111"}
    finally:
        await store.close()
    tables = await _tables(url, schema)
    assert "alembic_version" not in tables
    assert not tables & {"users", "grants", "audit_events", "signin_replays", "risc_events_seen"}


async def test_tables_named_like_ours_without_our_history_are_named_in_one_line(
    database: tuple[str, str | None], store_keyring: KeyRing
) -> None:
    url, schema = database
    await _execute(url, schema, "CREATE TABLE gk_users (id INTEGER PRIMARY KEY)")
    with pytest.raises(ConfigurationError) as raised:
        await GrantStore.open(url, store_keyring, ManualClock(), schema=schema, migrate=True)
    message = str(raised.value)
    assert "gk_users" in message
    assert "GRANTKEEPER_DATABASE_SCHEMA" in message
    assert "\n" not in message


@pytest.mark.postgres
async def test_a_misspelt_schema_is_refused_on_start_with_a_suggestion(
    postgres_url: str, tmp_path: Path
) -> None:
    url, schema = postgres_url, f"gk_app_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await _refused_with_suggestion(url, schema, tmp_path)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _refused_with_suggestion(url: str, schema: str, tmp_path: Path) -> None:
    typo = schema[:-1] + ("x" if schema[-1] != "x" else "y")
    settings = Settings(
        database_url=url,
        database_schema=typo,
        data_dir=tmp_path,
        encryption_keys=[generate_key("k1")],
    )
    with pytest.raises(ConfigurationError) as raised:
        await GrantStore.open_from_settings(settings, migrate=True)
    assert f"Did you mean {schema!r}?" in str(raised.value)
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (typo,)
        ).fetchall()
    assert found == []  # no new, empty schema was made


@pytest.mark.slow
def test_db_upgrade_explains_a_collision_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE gk_grants (id INTEGER PRIMARY KEY)")
    result = subprocess.run(
        [sys.executable, "-m", "grantkeeper", "db", "upgrade", "--database-url", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("config_invalid: The database already has table(s) gk_grants")
    assert len(rest) <= 1  # the advice line


async def test_with_migrate_on_start_off_only_db_upgrade_migrates(tmp_path: Path) -> None:
    db = tmp_path / "off.sqlite3"
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{db}",
        encryption_keys=[generate_key("k1")],
        migrate_on_start=False,
    )
    with pytest.raises(ConfigurationError) as raised:
        await GrantStore.open_from_settings(settings)
    assert "grantkeeper db upgrade" in str(raised.value)
    assert "none (empty)" in str(raised.value)
    store = await GrantStore.open(f"sqlite:///{db}", KeyRing.from_strings([generate_key("k")]))
    try:
        await store.migrate()
    finally:
        await store.close()
    opened = await GrantStore.open_from_settings(settings)
    await opened.close()
