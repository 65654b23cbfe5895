"""What every part of :class:`~grantkeeper.store.GrantStore` shares: the engine, key ring, codec
and clock, short read and write transactions, and the grant-row queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from grantkeeper.clock import Clock
from grantkeeper.crypto import KeyRing
from grantkeeper.store.codec import GrantCodec
from grantkeeper.store.compiled_reads import CompiledReads
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.engine import postgres_options, transaction
from grantkeeper.store.pg_direct_pool import (
    MAX_WRITE_CONNECTIONS,
    DirectPathUnavailable,
    DirectPool,
)
from grantkeeper.store.pg_direct_writes import DirectWrites
from grantkeeper.store.sqlite_inline import SqliteInline, inline_supported
from grantkeeper.store.tables import grants
from grantkeeper.tracing import span

T = TypeVar("T")


def param(column: sa.ColumnClause[Any] | sa.Column[Any]) -> sa.BindParameter[Any]:
    """A parameter standing for a value of ``column`` in a statement built once: named
    ``p_<column>`` (SQLAlchemy reserves a column's own name in an INSERT's or UPDATE's values)
    and typed like it, so dates and JSON are converted as they are for ``.values()``."""
    return sa.bindparam("p_" + column.name, type_=column.type)


def params(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` by column name, as the parameters :func:`param` names."""
    return {"p_" + name: value for name, value in values.items()}


class StoreCore:
    """The state and helpers the grant store's parts (mixins) build on."""

    def __init__(
        self, engine: AsyncEngine, keyring: KeyRing, clock: Clock, *, schema: str | None = None
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._codec = GrantCodec(keyring)
        self._clock = clock
        self._schema = schema
        # SQLite files: transactions without a thread hop per statement (see sqlite_inline).
        self._inline = SqliteInline(engine.url) if inline_supported(engine.url) else None
        # PostgreSQL: the grant read of every hand-out past SQLAlchemy (see pg_direct_pool).
        direct = engine.dialect.name == "postgresql" and DirectPool.available()
        options = postgres_options(schema) if direct else None
        self._direct = DirectPool(engine.url, options=options) if direct else None
        # PostgreSQL: the hot paths' writes on a pool of their own (see pg_direct_writes).
        self._direct_writes = (
            DirectWrites(
                DirectPool(
                    engine.url,
                    options=options,
                    name="writes",
                    max_connections=MAX_WRITE_CONNECTIONS,
                ),
                engine.url,
                engine.dialect,
            )
            if direct
            else None
        )
        self._statements: dict[Hashable, Any] = {}
        self._compiled_reads = CompiledReads(engine.dialect)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._transaction(write=False)

    def _write(self, *, direct: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction. ``direct``: every statement in it is built once (``hot``), so
        on PostgreSQL it may run on the direct pool (:mod:`.pg_direct_writes`)."""
        return self._transaction(write=True, direct=direct)

    def _write_one(self, *, direct: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write of ONE statement (atomic by itself): on PostgreSQL it runs without BEGIN and
        COMMIT, two round trips of three; on SQLite it is an ordinary write. ``direct``: as
        for :meth:`_write`."""
        return self._transaction(write=True, one_statement=True, direct=direct)

    @asynccontextmanager
    async def _transaction(
        self, *, write: bool, one_statement: bool = False, direct: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        with span("grantkeeper.store.transaction", db_system=self.dialect, write=write):
            inner: AbstractAsyncContextManager[AsyncConnection] | None = None
            if self._inline is not None:
                inner = self._inline.transaction(write=write)
            elif direct and write and self._direct_writes is not None:
                try:
                    inner = await self._direct_writes.begin(one_statement=one_statement)
                except DirectPathUnavailable:
                    inner = None  # nothing was sent: the SQLAlchemy path takes the write
            if inner is None:
                inner = transaction(self._engine, write=write, one_statement=one_statement)
            async with inner as conn:
                yield conn

    async def _read_first(
        self, statement: sa.Select[Any], parameters: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row of a one-statement read, by column name, past SQLAlchemy's execution
        where the database allows (SQLite files; PostgreSQL with psycopg_pool), through it
        elsewhere and whenever the direct path cannot serve the read (pg_direct_pool)."""
        with span("grantkeeper.store.transaction", db_system=self.dialect, write=False):
            if self._inline is not None:
                return self._inline.first(self._compiled_reads[statement], parameters)
            if self._direct is not None:
                try:
                    return await self._direct.first(self._compiled_reads[statement], parameters)
                except DirectPathUnavailable:
                    pass
            inner = transaction(self._engine, write=False)
            async with inner as conn:
                row = (await conn.execute(statement, parameters)).first()
            return None if row is None else row._mapping

    def _prebuilt(self, key: Hashable, build: Callable[[], T]) -> T:
        """The statement ``key`` names, built once per store (its dialect), parameters per
        call (:func:`param`). A statement built per call is keyed and compiled again by
        SQLAlchemy each time: py-spy put ~40% of the store's CPU on a sign-in or a refresh
        there (``values()``, coercions, cache keys)."""
        try:
            statement: T = self._statements[key]
        except KeyError:
            statement = self._statements[key] = hot(build())
        return statement

    def _insert(self, table: sa.Table) -> Any:
        # Both dialects spell upserts as INSERT … ON CONFLICT; the Insert classes differ.
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _grant_filter(sub: str, client_id: str | None) -> list[sa.ColumnElement[bool]]:
        conditions = [grants.c.sub == sub]
        if client_id is not None:
            conditions.append(grants.c.client_id == client_id)
        return conditions

    def _grant_query(self, sub: str, client_id: str | None) -> sa.Select[Any]:
        return (
            grants.select()
            .where(*self._grant_filter(sub, client_id))
            .order_by(grants.c.updated_at.desc(), grants.c.id.desc())
            .limit(1)
        )


#: A grant by its key, (sub, client_id): the statement of every token read, built once so
#: SQLAlchemy neither rebuilds it nor recomputes its cache key per call (parameters per call).
GRANT_OF_CLIENT = grants.select().where(
    grants.c.sub == sa.bindparam("sub"), grants.c.client_id == sa.bindparam("client_id")
)

#: The grant of one (sub, client_id) in an UPDATE built once (parameters: :func:`of_grant`;
#: SQLAlchemy reserves the columns' own names there for values to SET).
OF_GRANT = (
    grants.c.sub == sa.bindparam("w_sub", type_=grants.c.sub.type),
    grants.c.client_id == sa.bindparam("w_client_id", type_=grants.c.client_id.type),
)


def of_grant(sub: str, client_id: str) -> dict[str, str]:
    """The parameters of :data:`OF_GRANT`."""
    return {"w_sub": sub, "w_client_id": client_id}
