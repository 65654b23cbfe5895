"""``grantkeeper db upgrade|current``: the store's schema, migrated with the packaged Alembic."""

from __future__ import annotations

import typer

from grantkeeper._cli.runner import EXIT_FAILED, Commands, run, say, warn
from grantkeeper.settings import Settings

app = Commands(help="The grant store's database schema.", no_args_is_help=True)

_URL = typer.Option(
    None, "--database-url", help="Overrides GRANTKEEPER_DATABASE_URL.", show_default=False
)
_SCHEMA = typer.Option(
    None, "--schema", help="PostgreSQL schema; overrides GRANTKEEPER_DATABASE_SCHEMA."
)


async def _with_engine(url: str, schema: str | None, *, upgrade: bool) -> tuple[str, str | None]:
    # Imported here: SQLAlchemy and Alembic would slow every other command's start.
    from grantkeeper.store import migrate

    return await migrate.database_revision(url, schema, upgrade_first=upgrade)


@app.command()
def upgrade(database_url: str | None = _URL, schema: str | None = _SCHEMA) -> None:
    """Create or migrate the tables to the newest revision (safe to run on every deploy)."""
    settings = Settings()
    url, revision = run(
        _with_engine(
            database_url or settings.effective_database_url,
            schema or settings.database_schema,
            upgrade=True,
        )
    )
    say(f"{url}: at revision {revision} (head)")


@app.command()
def current(
    database_url: str | None = _URL,
    schema: str | None = _SCHEMA,
    check: bool = typer.Option(False, "--check", help="Exit 1 unless at the newest revision."),
) -> None:
    """Print the database's migration revision and the newest one this version ships."""
    settings = Settings()
    url, revision = run(
        _with_engine(
            database_url or settings.effective_database_url,
            schema or settings.database_schema,
            upgrade=False,
        )
    )
    from grantkeeper.store.migrate import head_revision

    head = head_revision()
    say(f"{url}: revision {revision or 'none (empty database)'}; newest {head}")
    if check and revision != head:
        warn("The database needs: grantkeeper db upgrade")
        raise typer.Exit(EXIT_FAILED)
