"""Alembic, run programmatically on the store's own engine (no ``alembic.ini``).

Several processes may start at once (workers, the CLI, tests), so an upgrade runs under a lock:
PostgreSQL's transaction-scoped advisory lock, or SQLite's write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from grantkeeper.store.engine import check_schema_name, transaction

# An arbitrary constant shared by every grantkeeper process: "gk" migrations.
_ADVISORY_LOCK_ID = 0x676B_6D69_6772


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "grantkeeper.store:migrations")
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, *, schema: str | None = None, target: str = "head") -> None:
    """Bring the database (and ``schema``, created if missing) up to ``target``."""
    config = alembic_config()

    def run(connection: sa.Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, target)

    async with transaction(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_ID)))
            if schema is not None:
                await conn.execute(
                    sa.text(f'CREATE SCHEMA IF NOT EXISTS "{check_schema_name(schema)}"')
                )
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""

    def read(connection: sa.Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with transaction(engine, write=False) as conn:
        return await conn.run_sync(read)
