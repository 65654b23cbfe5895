"""PostgreSQL: the grant read of every token hand-out on psycopg's own pool, past SQLAlchemy's
asyncio layer.

A token read is one ``SELECT`` of one grant row. Through SQLAlchemy's asyncio engine (a greenlet
hop, the pool's checkout and reset events, the execution context, the result wrapper) that read
cost ~610 µs of CPU per call on the development machine; the same SQL, compiled once by
SQLAlchemy, run on a connection of a psycopg pool and decoded by the same codec cost ~190 µs
(``store.get_grant``, 8 at once, one run each, interleaved). The store's writes stay on
SQLAlchemy: they hold transactions, compare-and-swap and ``RETURNING`` logic that is not worth
a second implementation.

The direct path never changes what a read answers, only what it costs. When it cannot serve a
read (no connection free within :data:`CHECKOUT_TIMEOUT_SECONDS`, a connection the database
closed, any database error, another event loop than the one its pool lives on), the read goes
down the SQLAlchemy path, which reconnects, pings idle connections and turns failures into
:class:`~grantkeeper.errors.StoreUnavailable` as before; after a failure the direct path rests
for :data:`BACK_OFF_SECONDS` so that a database that is down costs no one a checkout wait per
request. Reads run without ``BEGIN``/``COMMIT`` (autocommit), as the SQLAlchemy path's reads do
on PostgreSQL: under READ COMMITTED every statement has its own snapshot either way, so a read
sees every write committed before it, whichever pool wrote it.

Each process keeps at most :data:`MAX_CONNECTIONS` connections here, besides the SQLAlchemy
pool's fifteen; they are opened when first needed and closed with the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL

from grantkeeper.store.compiled_reads import CompiledRead

log = logging.getLogger("grantkeeper.store")

#: Connections of the direct pool per process (reads take well under a millisecond of each).
MAX_CONNECTIONS = 5
#: How long a read waits for a free connection before it takes the SQLAlchemy path instead.
CHECKOUT_TIMEOUT_SECONDS = 0.5
#: The connections' name in ``pg_stat_activity`` (unless the URL names its own).
APPLICATION_NAME = "grantkeeper-reads"
#: How long the direct path rests after a failure (every read meanwhile takes SQLAlchemy's).
BACK_OFF_SECONDS = 5.0


class DirectPathUnavailable(Exception):
    """This read must take the SQLAlchemy path. Never leaves the store."""


class DirectReads:
    """Single-row reads of statements SQLAlchemy compiled, on a psycopg pool of their own."""

    def __init__(self, url: URL, *, options: str | None = None) -> None:
        # libpq takes the URL as SQLAlchemy holds it, without the "+psycopg" driver name.
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in url.query:
            # Tells these connections apart from the SQLAlchemy pool's in pg_stat_activity.
            self._kwargs["application_name"] = APPLICATION_NAME
        if options is not None:
            self._kwargs["options"] = options
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resting_until = 0.0
        self._checking: asyncio.Future[None] | None = None

    @staticmethod
    def available() -> bool:
        """psycopg_pool is installed (it comes with the ``postgres`` extra)."""
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:  # pragma: no cover - the postgres extra installs it
            return False
        return True

    async def first(
        self, read: CompiledRead, parameters: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The read's first row by column name (``None`` if none), processed as SQLAlchemy
        processes it (timestamps aware, in UTC).

        Raises:
            DirectPathUnavailable: take the SQLAlchemy path for this read.
        """
        import psycopg
        import psycopg_pool

        try:
            pool = await self._pool_here()
            async with pool.connection() as conn:
                cursor = await conn.execute(read.sql, read.parameters(parameters))
                row = await cursor.fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as error:
            self._rest(error)
            raise DirectPathUnavailable from error
        return None if row is None else read.row(row)

    async def _check(self, pool: Any) -> None:
        try:
            await pool.check()
        except Exception as error:
            # A check that fails leaves the dead connections to the next reads after the rest.
            log.info("checking the direct reads' connections failed: %s", type(error).__name__)
        finally:
            self._checking = None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._checking is not None:
            self._checking.cancel()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is awaited, so a loop runs
            running = None
        if running is self._loop:
            await pool.close()
        # From another loop the pool's connections cannot be closed cleanly; the process (or
        # the garbage collector) closes their sockets.

    async def _pool_here(self) -> Any:
        if time.monotonic() < self._resting_until:
            raise DirectPathUnavailable
        loop = asyncio.get_running_loop()
        if self._pool is None:
            from psycopg_pool import AsyncConnectionPool

            self._pool = AsyncConnectionPool(
                self._conninfo,
                kwargs=self._kwargs,
                min_size=1,
                max_size=MAX_CONNECTIONS,
                timeout=CHECKOUT_TIMEOUT_SECONDS,
                name="grantkeeper-reads",
                open=False,
            )
            self._loop = loop
            await self._pool.open(wait=False)
        elif loop is not self._loop:
            raise DirectPathUnavailable  # a psycopg connection belongs to one event loop
        return self._pool

    def _rest(self, error: BaseException) -> None:
        self._resting_until = time.monotonic() + BACK_OFF_SECONDS
        if self._pool is not None and self._checking is None:
            # One dead connection usually means all are (a restart): test them all now, so
            # the path does not come back from its rest only to meet the next dead one.
            self._checking = asyncio.ensure_future(self._check(self._pool))
        # The class name only: a driver's message can quote parameters.
        log.info(
            "direct PostgreSQL reads rest for %.0f s after %s; reads take the SQLAlchemy path",
            BACK_OFF_SECONDS,
            type(error).__name__,
        )
