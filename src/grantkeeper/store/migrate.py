"""Alembic, run programmatically on the store's own engine (no ``alembic.ini``).

Several processes may start at once (workers, the CLI, tests), so an upgrade runs under a lock:
PostgreSQL's transaction-scoped advisory lock, or SQLite's write lock (``BEGIN IMMEDIATE``).

grantkeeper's tables are named ``gk_…`` and its Alembic history lives in ``gk_alembic_version``,
so it can share a database with an app (its ``users`` table, its own ``alembic_version``).
Databases migrated before that (history in ``alembic_version``) are adopted on the next upgrade.
"""

from __future__ import annotations

import difflib
import functools
import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine

from grantkeeper.errors import ConfigurationError
from grantkeeper.store.engine import (
    check_schema_name,
    create_engine,
    display_url,
    normalize_url,
    transaction,
)

log = logging.getLogger("grantkeeper.store")

# An arbitrary constant shared by every grantkeeper process: "gk" migrations.
_ADVISORY_LOCK_ID = 0x676B_6D69_6772

VERSION_TABLE = "gk_alembic_version"
TABLE_PREFIX = "gk_"
#: Where revisions 0001-0003 recorded themselves, before the tables had a prefix.
LEGACY_VERSION_TABLE = "alembic_version"
LEGACY_REVISIONS = frozenset({"0001", "0002", "0003"})


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "grantkeeper.store:migrations")
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


# The scripts shipped with this process do not change while it runs; reading them (Alembic
# compiles every revision file) is what an upgrade of a database already at the head costs.
_shipped_head = functools.cache(head_revision)


async def upgrade(
    engine: AsyncEngine,
    *,
    schema: str | None = None,
    target: str = "head",
    create_schema: bool = True,
) -> None:
    """Bring the database (and ``schema``) up to ``target``.

    ``create_schema=False`` refuses a PostgreSQL schema that does not exist yet instead of
    creating it: the keeper migrating on its own start must not turn a typo in
    ``GRANTKEEPER_DATABASE_SCHEMA`` into a new, empty schema.

    Raises:
        ConfigurationError: the schema is missing (and not to be created), tables named like
            grantkeeper's exist without its history, or a migration step failed (one line).
    """
    config = alembic_config()

    def run(connection: sa.Connection) -> None:
        _prepare(connection, schema)
        if target == "head" and _at_revision(connection) == _shipped_head():
            # Every keeper, CLI command and worker start migrates: at the head, that is one
            # read of the version table, not Alembic's environment and every script.
            return
        config.attributes["connection"] = connection
        command.upgrade(config, target)

    try:
        async with transaction(engine, write=True) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_ID)))
                if schema is not None:
                    name = check_schema_name(schema)
                    if create_schema:
                        await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
                    else:
                        await conn.run_sync(_require_schema, name, display_url(engine.url))
            await conn.run_sync(run)
    except exc.DBAPIError as error:
        # A DDL statement failed (a name taken, a permission missing): one line, not the
        # driver's traceback. DDL carries no secrets, but the URL's password stays out.
        first = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        raise ConfigurationError(
            f"Migrating {display_url(engine.url)} failed: {first}. grantkeeper keeps its "
            f"tables as {TABLE_PREFIX}*; give it a schema (GRANTKEEPER_DATABASE_SCHEMA) or a "
            "database of its own if another program owns these names."
        ) from None


async def current_revision(engine: AsyncEngine, schema: str | None = None) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""

    def read(connection: sa.Connection) -> str | None:
        found = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        return found or _legacy_revision(connection, schema)

    async with transaction(engine, write=False) as conn:
        return await conn.run_sync(read)


def _at_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()


def _require_schema(connection: sa.Connection, schema: str, url: str) -> None:
    schemas = sa.inspect(connection).get_schema_names()
    if schema in schemas:
        return
    close = difflib.get_close_matches(schema, schemas, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(
        f"GRANTKEEPER_DATABASE_SCHEMA={schema!r} does not exist in {url}.{hint} "
        "Run `grantkeeper db upgrade` to create it, or fix the name."
    )


def _prepare(connection: sa.Connection, schema: str | None) -> None:
    """Adopt a pre-prefix history, or explain in one line why this database is not ours."""
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names(schema=schema))
    if VERSION_TABLE in tables:
        return
    legacy = _legacy_revision(connection, schema, tables)
    if legacy is not None:
        _adopt_legacy_version_table(connection, schema, legacy)
        return
    taken = sorted(t for t in tables if t.startswith(TABLE_PREFIX))
    if taken:
        raise ConfigurationError(
            f"The database already has table(s) {', '.join(taken)} but no grantkeeper "
            f"migration history ({VERSION_TABLE}); give grantkeeper a schema "
            "(GRANTKEEPER_DATABASE_SCHEMA) or a database of its own."
        )


def _legacy_revision(
    connection: sa.Connection, schema: str | None, tables: set[str] | None = None
) -> str | None:
    """Our revision recorded in ``alembic_version`` by a version before the ``gk_`` names,
    recognised by the revision and by our ``grants`` table (so an app's own Alembic history
    with a revision that happens to be called ``0002`` is never taken for ours)."""
    if tables is None:
        tables = set(sa.inspect(connection).get_table_names(schema=schema))
    if LEGACY_VERSION_TABLE not in tables or "grants" not in tables:
        return None
    columns = {c["name"] for c in sa.inspect(connection).get_columns("grants", schema=schema)}
    if "refresh_token_sha512x2" not in columns:
        return None
    legacy = _version_table(LEGACY_VERSION_TABLE, schema)
    found = [row[0] for row in connection.execute(sa.select(legacy.c.version_num))]
    return found[0] if len(found) == 1 and found[0] in LEGACY_REVISIONS else None


def _version_table(name: str, schema: str | None) -> sa.Table:
    # Alembic's own layout of a version table.
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
        schema=schema,
    )


def _adopt_legacy_version_table(
    connection: sa.Connection, schema: str | None, revision: str
) -> None:
    ours = _version_table(VERSION_TABLE, schema)
    ours.create(connection)
    connection.execute(ours.insert().values(version_num=revision))
    _version_table(LEGACY_VERSION_TABLE, schema).drop(connection)
    log.info(
        "moved grantkeeper's migration history from %s to %s (at %s)",
        LEGACY_VERSION_TABLE,
        VERSION_TABLE,
        revision,
    )


async def database_revision(
    url: str, schema: str | None = None, *, upgrade_first: bool = False
) -> tuple[str, str | None]:
    """Connect to ``url`` (``schema`` on PostgreSQL), migrate it to the head first if asked,
    and return its printable URL (no password) and revision (``grantkeeper db``)."""
    engine = create_engine(normalize_url(url), schema=schema)
    try:
        if upgrade_first:
            await upgrade(engine, schema=schema)
        return display_url(engine.url), await current_revision(engine, schema)
    finally:
        await engine.dispose()
