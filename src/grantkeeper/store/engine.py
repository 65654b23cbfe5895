"""Database URLs and engines: SQLite (embedded default) and PostgreSQL, both async.

- ``sqlite:///path`` / ``sqlite+aiosqlite:///path``: WAL journal, a busy timeout, foreign keys
  on, and transactions begun by SQLAlchemy (``BEGIN IMMEDIATE`` for writes) instead of by the
  ``sqlite3`` module's legacy mode, so a read-modify-write never fails half-way on a lock.
- ``postgresql://``, ``postgres://`` or ``postgresql+psycopg://``: psycopg 3. A ``schema``
  puts every table (and Alembic's version table) in that schema via ``search_path``; a
  ``search_path`` in the URL's ``options`` works too.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from grantkeeper.errors import ConfigurationError, StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 10_000
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_WRITE = "grantkeeper_write"


def normalize_url(url: str) -> URL:
    """Pick the async driver for a user-supplied URL; refuse backends we do not test."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigurationError(
            "GRANTKEEPER_DATABASE_URL is not a database URL "
            "(expected sqlite:///path or postgresql://user@host/db)."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigurationError(
        f"GRANTKEEPER_DATABASE_URL uses {backend!r}; grantkeeper supports sqlite and postgresql."
    )


def check_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"Schema name {schema!r} must be lower-case letters, digits and _ (max 63)."
        )
    return schema


def display_url(url: URL) -> str:
    """The URL for messages: never with its password."""
    return url.render_as_string(hide_password=True)


def create_engine(url: URL, *, schema: str | None = None) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_directory(url)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        configure_sqlite_connections(engine.sync_engine)
        return engine
    try:
        import psycopg  # noqa: F401  # the driver of postgresql+psycopg URLs
    except ImportError:
        raise ConfigurationError(
            "A PostgreSQL database needs the optional 'postgres' part of grantkeeper (psycopg "
            "is not installed): pip install 'grantkeeper[postgres]'."
        ) from None
    options = postgres_options(schema)
    if options is not None:
        # libpq applies this to every new connection, including those Alembic uses.
        connect_args["options"] = options
    # Three kept connections, two more at a peak: the hot paths' reads and writes take the
    # direct pools' five and ten (pg_direct_pool), so a process still opens at most twenty.
    engine = create_async_engine(url, connect_args=connect_args, pool_size=3, max_overflow=2)
    _ping_when_idle(engine.sync_engine)
    return engine


def postgres_options(schema: str | None) -> str | None:
    """libpq's ``options`` for connections to ``schema`` (None: the URL's own search_path)."""
    return None if schema is None else f"-c search_path={check_schema_name(schema)}"


#: A pooled PostgreSQL connection that sat idle this long is pinged before it is used.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: sa.Engine) -> None:
    """SQLAlchemy's pre-ping, but only for a connection idle for a second or more.

    After a database restart the first request must find a live connection, not answer 503:
    the restart takes longer than a second, so every connection left from before it has been
    idle that long (one used meanwhile failed, and a failure on a dead connection makes
    SQLAlchemy replace the whole pool). A connection in steady use skips the round trip:
    ``pool_pre_ping`` paid it on every transaction, ~8% of a refresh's CPU on PostgreSQL.
    A failed ping raises ``DisconnectionError``: the pool drops that connection and checks
    out another (SQLAlchemy's documented checkout-event ping).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(type(error).__name__) from error
        if not alive:
            raise exc.DisconnectionError("the ping got no answer")


_IDLE_SINCE = "grantkeeper_idle_since"


def _ensure_sqlite_directory(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(
                f"The SQLite database's directory {path.parent} cannot be created "
                f"({error.strerror or type(error).__name__}): point GRANTKEEPER_DATABASE_URL "
                "(or GRANTKEEPER_DATA_DIR) at a writable directory."
            ) from None
        _private_file(path)


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600, like the key file): it holds
    users' profiles and sealed tokens. SQLite gives its -wal and -shm files the database file's
    mode, so they follow. A file we own that others can read is tightened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # e.g. a read-only location: SQLite will say what is wrong when it connects
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o077 and info.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        with contextlib.suppress(OSError):
            if sidecar.stat().st_mode & 0o077:
                sidecar.chmod(0o600)


def configure_sqlite_connections(engine: sa.Engine) -> None:
    """WAL, the busy timeout and foreign keys on every new connection; transactions begun by
    SQLAlchemy (``BEGIN IMMEDIATE`` for writes)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A write transaction takes the write lock up front, so it waits (busy timeout) rather
        # than failing when it would have to upgrade a read lock another writer made stale.
        immediate = connection.get_execution_options().get(_WRITE, False)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        if connection.dialect.driver == "pysqlite":
            # Straight to sqlite3: through exec_driver_sql a BEGIN cost as much as the
            # token read's own SELECT.
            connection.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
        else:
            connection.exec_driver_sql(statement)


@asynccontextmanager
async def transaction(
    engine: AsyncEngine, *, write: bool, one_statement: bool = False
) -> AsyncIterator[AsyncConnection]:
    """One short transaction; connection failures become :class:`StoreUnavailable`.
    ``one_statement``: the caller runs a single statement, which PostgreSQL may run in
    autocommit (atomic by itself)."""
    try:
        async with engine.connect() as conn:
            if write and one_statement and engine.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            elif write:
                conn = await conn.execution_options(**{_WRITE: True})
            elif engine.dialect.name == "postgresql":
                # A read runs its statements without BEGIN and COMMIT (two round trips of
                # three for a token read's one SELECT). The same as a transaction under READ
                # COMMITTED, PostgreSQL's default: there every statement has its own snapshot
                # anyway, and a read never locks (no FOR UPDATE outside a write).
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with conn.begin():
                yield conn
    except BaseException as error:
        mapped = store_error(engine.url, error)
        if mapped is None:
            raise
        raise mapped from error


def store_error(url: URL, error: BaseException) -> StoreUnavailable | None:
    """The :class:`StoreUnavailable` a failed transaction raises instead of ``error`` (a lost
    connection, an unavailable database, missing tables); ``None``: ``error`` is the caller's
    (a constraint, a bug)."""
    if isinstance(error, exc.OperationalError | exc.InterfaceError | OSError):
        return unavailable(url, error)
    if isinstance(error, exc.DBAPIError) and (
        error.connection_invalidated or _missing_table(error)
    ):
        return unavailable(url, error)
    return None


def _missing_table(error: BaseException) -> bool:
    """SQLAlchemy's error or the driver's own (the direct reads meet sqlite3's unwrapped)."""
    # SQLite says "no such table"; PostgreSQL's SQLSTATE 42P01 is undefined_table.
    driver_error = error.orig if isinstance(error, exc.DBAPIError) else error
    return (
        "no such table" in str(driver_error) or getattr(driver_error, "sqlstate", None) == "42P01"
    )


def unavailable(url: URL, error: BaseException) -> StoreUnavailable:
    # The driver's message can quote SQL parameters; only its class name goes in ours.
    # Public answers name no infrastructure (user, host, port, database, file): only logs and
    # the CLI show where the database is.
    if _missing_table(error):
        return StoreUnavailable(
            f"The database at {display_url(url)} has no grantkeeper tables; "
            "run: grantkeeper db upgrade.",
            public_detail="The grant store has no grantkeeper tables yet.",
        )
    driver_error = getattr(error, "orig", None) or error
    cause = type(driver_error).__name__
    if str(getattr(driver_error, "sqlstate", None) or "").startswith("40"):
        # PostgreSQL's transaction rollback class (a deadlock, a serialization failure): the
        # database is fine, it undid this write to let a conflicting one through.
        return StoreUnavailable(
            f"The database at {display_url(url)} rolled this write back to resolve a conflict "
            f"with another one ({cause}); retry it.",
            public_detail="The grant store undid this write to resolve a conflict; retry it.",
        )
    return StoreUnavailable(
        f"The database at {display_url(url)} is unavailable ({cause}).",
        public_detail="The grant store is unavailable.",
    )
