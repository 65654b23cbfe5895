"""PostgreSQL: psycopg pools of the store's own, past SQLAlchemy's asyncio layer: one serves
the grant read of every token hand-out (:meth:`DirectPool.first`), another the writes of the
hot paths (:mod:`.pg_direct_writes`, through :meth:`DirectPool.checkout`).

A token read is one ``SELECT`` of one grant row. Through SQLAlchemy's asyncio engine (a greenlet
hop, the pool's checkout and reset events, the execution context, the result wrapper) that read
cost ~610 µs of CPU per call on the development machine; the same SQL, compiled once by
SQLAlchemy, run on a connection of a psycopg pool and decoded by the same codec cost ~190 µs
(``store.get_grant``, 8 at once, one run each, interleaved). The writes have rules of their
own: a write never falls back once sent.

The direct path never changes what a read answers, only what it costs. When it cannot serve a
read (no connection free within :data:`CHECKOUT_TIMEOUT_SECONDS`, a connection the database
closed, any database error, another event loop than the one its pool lives on), the read goes
down the SQLAlchemy path, which reconnects, pings idle connections and turns failures into
:class:`~grantkeeper.errors.StoreUnavailable` as before; after a failure the direct path rests
for :data:`BACK_OFF_SECONDS` so that a database that is down costs no one a checkout wait per
request (the pool being merely busy does not make it rest). A connection idle for a second or
more is pinged at checkout, as the SQLAlchemy pool does. Reads run without ``BEGIN``/``COMMIT``
(autocommit), as the SQLAlchemy path's reads do on PostgreSQL: under READ COMMITTED every
statement has its own snapshot either way, so a read sees every write committed before it,
whichever pool wrote it.

Each process keeps at most :data:`MAX_CONNECTIONS` connections for these reads and
:data:`MAX_WRITE_CONNECTIONS` for the direct writes (a pool each: a write waiting on a row lock
never keeps a read waiting for a connection), besides the SQLAlchemy pool's five; they are
opened when first needed and closed with the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL

from grantkeeper.store.compiled_reads import CompiledRead
from grantkeeper.store.engine import PING_AFTER_IDLE_SECONDS

log = logging.getLogger("grantkeeper.store")

#: Connections of the direct reads' pool per process (a read holds one for one round trip).
MAX_CONNECTIONS = 5
#: Connections of the direct writes' pool per process (:mod:`.pg_direct_writes`; a write holds
#: one for up to five round trips: with five, writers queued for one at eight at once).
MAX_WRITE_CONNECTIONS = 10
#: How long a read waits for a free connection before it takes the SQLAlchemy path instead.
CHECKOUT_TIMEOUT_SECONDS = 0.5
#: The connections' name in ``pg_stat_activity`` (unless the URL names its own).
APPLICATION_NAME = "grantkeeper-direct"
#: How long the direct path rests after a failure (every read meanwhile takes SQLAlchemy's).
BACK_OFF_SECONDS = 5.0


#: When each connection of a direct pool was last given back.
_idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


async def _alive(conn: Any) -> bool:
    """``conn`` was in use less than a second ago, or answers a ping now (else it is closed)."""
    import psycopg

    since = _idle_since.get(conn)
    if since is not None and time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
        return True
    try:
        await conn.execute("SELECT 1")
    except (psycopg.Error, OSError):
        await conn.close()
        return False
    return True


async def _connected(conn: Any) -> None:
    # A connection the pool opened counts as idle from then on (it may wait long for its
    # first checkout).
    _idle_since[conn] = time.monotonic()


class DirectPathUnavailable(Exception):
    """This read must take the SQLAlchemy path. Never leaves the store."""


class DirectPool:
    """A psycopg pool past SQLAlchemy: single-row reads of statements SQLAlchemy compiled
    (:meth:`first`), and connections for the direct writes (:meth:`checkout`)."""

    def __init__(
        self,
        url: URL,
        *,
        options: str | None = None,
        name: str = "reads",
        max_connections: int | None = None,
    ) -> None:
        self._name = f"grantkeeper-direct-{name}"
        self._max = MAX_CONNECTIONS if max_connections is None else max_connections
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

        conn = await self.checkout()
        try:
            cursor = await conn.execute(read.sql, read.parameters(parameters))
            row = await cursor.fetchone()
        except (psycopg.Error, OSError) as error:
            self._rest(error)
            raise DirectPathUnavailable from error
        finally:
            await self.checkin(conn)
        return None if row is None else read.row(row)

    async def checkout(self) -> Any:
        """A connection of the pool (give it back with :meth:`checkin`). One that sat idle for
        :data:`~.engine.PING_AFTER_IDLE_SECONDS` or more is pinged first, and one that fails
        the ping is dropped for the next (after a database restart every connection left
        from before it has been idle that long), as the SQLAlchemy pool does.

        Raises:
            DirectPathUnavailable: none within :data:`CHECKOUT_TIMEOUT_SECONDS`, the pool is
                another event loop's, or the path rests after a failure.
        """
        import psycopg
        import psycopg_pool

        pool = await self._pool_here()
        for _ in range(self._max + 1):
            try:
                conn = await pool.getconn()
            except psycopg_pool.PoolTimeout as error:
                if pool.get_stats().get("pool_size", 0) < self._max:
                    self._rest(error)  # it could not connect: the database is down or far
                # Else every connection is busy: this call takes the other path, the next
                # may not.
                raise DirectPathUnavailable from error
            except (psycopg.Error, OSError) as error:
                self._rest(error)
                raise DirectPathUnavailable from error
            try:
                alive = await _alive(conn)
            except BaseException:  # cancelled during the ping: the connection goes back
                await pool.putconn(conn)
                raise
            if alive:
                return conn
            await pool.putconn(conn)  # closed: the pool drops it and opens another
        self._rest(DirectPathUnavailable("every connection failed its ping"))
        raise DirectPathUnavailable

    async def checkin(self, conn: Any) -> None:
        """Give ``conn`` back: the pool rolls back an open transaction and drops a connection
        that failed or is still busy (a cancelled statement)."""
        _idle_since[conn] = time.monotonic()
        pool = self._pool
        if pool is None:  # closed meanwhile
            await conn.close()
            return
        await pool.putconn(conn)

    async def _check(self, pool: Any) -> None:
        try:
            await pool.check()
        except Exception as error:
            # A check that fails leaves the dead connections to the next calls after the rest.
            log.info("checking the connections of %s failed: %s", self._name, type(error).__name__)
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
                max_size=self._max,
                timeout=CHECKOUT_TIMEOUT_SECONDS,
                configure=_connected,
                name=self._name,
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
            "the direct PostgreSQL pool %s rests for %.0f s after %s; its calls take the "
            "SQLAlchemy path",
            self._name,
            BACK_OFF_SECONDS,
            type(error).__name__,
        )
