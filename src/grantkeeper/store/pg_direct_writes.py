"""PostgreSQL: the writes of every sign-in, refresh and token hand-out on psycopg's own pool,
past SQLAlchemy's asyncio layer.

A statement through SQLAlchemy's asyncio engine (a greenlet hop, the pool's checkout and reset
events, the execution context, parameter and result processing set up per call) cost ~250 µs
of this process's CPU; psycopg alone spends ~50 µs on a round trip. The writes on the hot paths
(the claim on a sign-in's code, the sign-in itself, a refresh's lease and result, the hand-outs'
audit events) run here: the statements the store builds once (:func:`.compiled_writes.hot`),
compiled by SQLAlchemy once per parameter key set, with SQLAlchemy's bind and result processors
(:mod:`.compiled_writes`), on a psycopg pool of their own beside the direct reads'
(:mod:`.pg_direct_pool`).

Unlike a read, a write never goes down the SQLAlchemy path once anything was sent: a statement
the server may have applied must not be sent again. So the choice is made at the checkout:

- no connection free within the pool's timeout, the pool on another event loop, or the direct
  path resting after a failure: the write runs through SQLAlchemy, as before;
- a connection idle for :data:`~.engine.PING_AFTER_IDLE_SECONDS` or more is pinged first (the
  pool replaces it if the ping fails), as the SQLAlchemy pool does, so that after a database
  restart the first write finds a live connection instead of failing;
- once the first statement is sent, a failure is the caller's, exactly as SQLAlchemy raises it
  (``IntegrityError`` and so on, parameters hidden) and mapped as the SQLAlchemy path maps it: a
  lost connection or an unavailable database is :class:`~grantkeeper.errors.StoreUnavailable`.

A transaction is psycopg's (``BEGIN`` … ``COMMIT``; ``ROLLBACK`` when the block raises); a
write of one statement runs without them (autocommit), as on the SQLAlchemy path. A statement
this path cannot run as compiled (a Python-side column default, say) raises
:class:`DirectStatementRefused` before anything is sent: the store's tests run every hot path
on PostgreSQL, so this is a defect in the store, never a user's input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.compiled_writes import (
    CompiledWrites,
    WrittenResult,
    is_hot,
    written_row,
)
from grantkeeper.store.engine import store_error

if TYPE_CHECKING:
    from grantkeeper.store.pg_direct_pool import DirectPool


class DirectStatementRefused(RuntimeError):
    """A statement the direct write path cannot run as SQLAlchemy compiled it (not built once,
    or with a value SQLAlchemy computes per call). A defect in the store."""


class DirectConnection:
    """What the store uses of an ``AsyncConnection`` (``execute``) on a psycopg connection."""

    __slots__ = ("_conn", "_writes")

    def __init__(self, conn: Any, writes: CompiledWrites) -> None:
        self._conn = conn
        self._writes = writes

    async def execute(self, statement: Any, parameters: Any = None) -> WrittenResult:
        import psycopg

        found = self._writes.compiled(statement, parameters) if is_hot(statement) else None
        if found is None:
            raise DirectStatementRefused(
                f"{type(statement).__name__} cannot take the direct PostgreSQL path: build it "
                "once (StoreCore._prebuilt or hot()) with every value a parameter"
            )
        compiled, rows = found
        many = len(rows) > 1
        if many:
            several = self._writes.rows(statement, rows)
            if several is not None:
                compiled, rows, many = several[0], (several[1],), False
        try:
            bound = [compiled.parameters(row) for row in rows]
        except Exception as error:  # a bind processor's (a naive datetime), as SQLAlchemy's
            raise exc.DBAPIError.instance(
                compiled.sql, None, error, psycopg.Error, hide_parameters=True, ismulti=many
            ) from error
        try:
            cursor = self._conn.cursor()
            if many:
                await cursor.executemany(compiled.sql, bound)
            else:
                await cursor.execute(compiled.sql, bound[0])
            fetched = await cursor.fetchall() if compiled.names is not None else None
        except psycopg.Error as error:
            raise exc.DBAPIError.instance(
                compiled.sql,
                None,
                error,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=bool(self._conn.broken),
                ismulti=many,
            ) from error
        if fetched is None:
            return WrittenResult(cursor.rowcount, None)
        return WrittenResult(cursor.rowcount, [written_row(compiled, row) for row in fetched])


class DirectWrites:
    """Write transactions on the direct pool (see the module docstring)."""

    def __init__(self, pool: DirectPool, url: URL, dialect: Dialect) -> None:
        self._pool = pool
        self._url = url
        self._writes = CompiledWrites(dialect)

    async def begin(self, *, one_statement: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write on a connection of the direct pool, checked out now: the caller's
        ``async with`` runs it.

        Raises:
            DirectPathUnavailable: at the checkout, before anything is sent; take the
                SQLAlchemy path.
        """
        return self._transaction(await self._pool.checkout(), one_statement)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _transaction(self, conn: Any, one_statement: bool) -> AsyncIterator[AsyncConnection]:
        """Raises :class:`StoreUnavailable` where the connection or the database failed."""
        import psycopg

        try:
            try:
                if one_statement:
                    yield _as_async(DirectConnection(conn, self._writes))
                else:
                    async with conn.transaction():
                        yield _as_async(DirectConnection(conn, self._writes))
            except psycopg.Error as error:  # BEGIN, COMMIT or ROLLBACK's, as SQLAlchemy's
                raise exc.DBAPIError.instance(
                    None,
                    None,
                    error,
                    psycopg.Error,
                    hide_parameters=True,
                    connection_invalidated=bool(conn.broken),
                ) from error
        except BaseException as error:
            mapped = store_error(self._url, error)
            if mapped is None:
                raise
            raise mapped from error
        finally:
            await self._pool.checkin(conn)


def _as_async(conn: DirectConnection) -> AsyncConnection:
    # Inside a write the store only calls execute(); DirectConnection has it with the same
    # signature, so the store's code is the same on every path.
    return cast(AsyncConnection, conn)
