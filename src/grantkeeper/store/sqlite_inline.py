"""SQLite without a thread hop per statement: reads run on the event loop, a write takes one
hop (to commit), or two when it must wait for another writer (one to take the write lock).

Through aiosqlite every call (connect, BEGIN, each statement and fetch, COMMIT, the pool's reset)
is a trip to the connection's own thread, bridged into asyncio by SQLAlchemy's greenlets; a
py-spy profile of a token read put most of its samples there, not in SQLite. SQLite answers a
read from its page cache in microseconds, and in WAL mode a reader never waits for a writer, so
a read transaction runs on the event-loop thread directly. A write must not stall the loop:
``BEGIN IMMEDIATE`` may wait (busy timeout) for another process's transaction and ``COMMIT``
fsyncs the WAL (milliseconds on a real disk), so those two run on the store's one writer
thread, and the statements in between run on the loop while the write lock is held. (A
``BEGIN IMMEDIATE`` that need not wait, because no commit of this process is in flight and the
lock between processes below is free, runs on the loop with a busy timeout of a few
milliseconds: most writes take one hop.) Within a
process one write transaction runs at a time (an ``asyncio.Lock``): SQLite has one writer
anyway, and this way a second writer waits on the loop instead of inside SQLite.

Between processes (``serve --workers N``, a worker beside ``serve``) the writer threads also
take an exclusive ``flock`` on a lock file beside the database (``<file>.writer-lock``, 0600)
from ``BEGIN`` to ``COMMIT``. SQLite alone makes a writer that finds the file locked sleep and
retry (1, 2, 5, … up to 100 ms at a time), so under a steady stream of writes from another
process one unlucky writer waited seconds (sign-in p99 of 1.8 s with two workers); a writer
blocked on ``flock`` is woken by the kernel the moment the lock is let go. Writers that do not
take it (migrations, other tools) still meet SQLite's own lock and busy timeout.

Connections are plain ``sqlite3`` ones (SQLAlchemy's pysqlite dialect, its pool, the same
statements, PRAGMAs and error mapping as the async engine); durability is unchanged
(``synchronous`` stays FULL, so a commit that returned is on disk). Inside a write, the
statements the store builds once run on ``sqlite3`` with SQLAlchemy's compiled SQL and
processors (:mod:`.compiled_writes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.compiled_reads import CompiledRead
from grantkeeper.store.compiled_writes import CompiledWrites, is_hot
from grantkeeper.store.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    configure_sqlite_connections,
    unavailable,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")

#: How long a BEGIN IMMEDIATE on the event loop may wait for SQLite's own locks before the write
#: goes to the writer thread instead (which waits the full busy timeout).
AT_ONCE_BUSY_TIMEOUT_MS = 5


class InlineConnection:
    """What the store uses of an ``AsyncConnection`` (``execute``) over a synchronous
    connection: it runs at once, on the calling thread."""

    __slots__ = ("_conn", "_writes")

    def __init__(self, conn: sa.Connection, writes: CompiledWrites | None = None) -> None:
        self._conn = conn
        self._writes = writes

    async def execute(self, statement: Any, parameters: Any = None) -> sa.CursorResult[Any]:
        if self._writes is not None and is_hot(statement):
            written = self._writes.run(self._conn, statement, parameters)
            if written is not None:
                return cast(sa.CursorResult[Any], written)
        return self._conn.execute(statement, parameters)


def inline_supported(url: URL) -> bool:
    """A file database: ``:memory:`` would be a different database per connection."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and database not in ("", ":memory:")


class SqliteInline:
    """Transactions on one SQLite file, as described in the module docstring."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = sa.create_engine(
            url.set(drivername="sqlite+pysqlite"),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        configure_sqlite_connections(self.engine)
        self._writer = _WriterThread("grantkeeper-sqlite-writer")
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._batch: _Batch | None = None
        self._committing: set[asyncio.Future[None]] = set()
        self._between_processes = _WriterLock.beside(url.database or "")
        # Reads run on the event loop (of any thread), one connection each while they last.
        self._readers: list[sa.Connection] = []
        # Write transactions' connections, kept between batches: taking one from the pool,
        # setting its options and giving it back were half of opening a write (py-spy). A
        # batch's connection comes back once its commit has run; two are in use at most (one
        # committing, the next batch's beginning).
        self._write_connections: list[sa.Connection] = []
        self._writes = CompiledWrites(self.engine.dialect)

    def close(self) -> None:
        while self._readers:
            self._readers.pop().close()
        self._writer.shutdown()
        while self._write_connections:
            self._write_connections.pop().close()
        self.engine.dispose()
        self._between_processes.close()

    def _write_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _on_writer(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the writer thread; a cancelled caller still waits for it to end, so
        the connection is never used from two threads at once."""
        future = self._writer.submit(call)
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(future)
                break
            except asyncio.CancelledError:
                if future.done():
                    raise
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return result

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        try:
            if write:
                async with self._write() as writing:
                    yield writing
            else:
                async with self._read() as reading:
                    yield reading
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise unavailable(self.url, error) from error
        except OSError as error:
            raise unavailable(self.url, error) from error
        except sqlite3.Error as error:
            # From the statements this module sends to sqlite3 itself (BEGIN, SAVEPOINT,
            # PRAGMA): SQLAlchemy wraps only its own. Every other statement goes through it.
            raise unavailable(self.url, error) from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise unavailable(self.url, error) from error
            raise

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction on a connection kept for reads: taking one from the pool and
        giving it back (a rollback to reset it) for each read cost more than the read."""
        try:
            conn = self._readers.pop()
        except IndexError:
            conn = self.engine.connect()
        try:
            with conn.begin():
                yield _as_async(conn)
        except BaseException:
            conn.close()  # whatever happened, the next read starts on a fresh connection
            raise
        self._readers.append(conn)

    def first(self, read: CompiledRead, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """A one-statement read straight on sqlite3, on a connection kept for reads: the
        statement is its own transaction (the connections are in autocommit mode), the row is
        processed as SQLAlchemy processes it (:mod:`.compiled_reads`). Through SQLAlchemy's
        ``execute`` and ``BEGIN``/``COMMIT`` the token read's SELECT cost ~6x as much CPU."""
        try:
            conn = self._readers.pop()
        except IndexError:
            try:
                conn = self.engine.connect()
            except (exc.OperationalError, exc.InterfaceError, OSError) as error:
                raise unavailable(self.url, error) from error
        try:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            row = dbapi.execute(read.sql, read.parameters(parameters)).fetchone()
        except sqlite3.Error as error:
            conn.close()  # the next read starts on a fresh connection
            raise unavailable(self.url, error) from error
        except BaseException:
            conn.close()
            raise
        self._readers.append(conn)
        return None if row is None else read.row(row)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction in a group commit. Writers that queue while one is being
        written join its batch: each runs its statements inside its own SAVEPOINT (so a
        failure rolls back only its own), and the batch commits once, on the writer thread.
        Nobody returns before the commit that holds their writes is on disk, so a returned
        write is as durable as before; one fsync serves many writers."""
        lock = self._write_lock()
        await lock.acquire()
        try:
            batch = self._batch
            if batch is None:
                conn = self._write_connection()
                # Not while this process's previous batch commits: it still holds both locks
                # (and a flock taken again through our own descriptor would succeed).
                try:
                    transaction = None if self._committing else self._begin_at_once(conn)
                    if transaction is None:
                        transaction = await self._on_writer(lambda: self._begin(conn))
                except BaseException:
                    conn.close()
                    raise
                batch = self._batch = _Batch(
                    conn, transaction, asyncio.get_running_loop().create_future()
                )
                # The commit runs as its own task: a cancelled first writer cannot strand
                # the writers that joined its batch.
                committing = asyncio.ensure_future(self._commit(batch, lock))
                self._committing.add(committing)
                committing.add_done_callback(self._committing.discard)
            # Straight to sqlite3 (writers of a batch take turns under the lock, so one name
            # serves): SQLAlchemy's begin_nested() cost a third of a one-statement write.
            raw = batch.conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("SAVEPOINT gk_writer")
        except BaseException:
            lock.release()
            raise
        failure: BaseException | None = None
        try:
            yield _as_async(batch.conn, self._writes)
        except BaseException as error:
            failure = error
            try:
                raw.execute("ROLLBACK TO SAVEPOINT gk_writer")
                raw.execute("RELEASE SAVEPOINT gk_writer")
            except sqlite3.Error:
                # SQLite already rolled the whole transaction back (a full disk, an I/O
                # error): the batch's commit fails and tells every writer in it so.
                pass
        else:
            raw.execute("RELEASE SAVEPOINT gk_writer")
        finally:
            lock.release()
        if failure is not None:
            raise failure
        await asyncio.shield(batch.committed)

    def _write_connection(self) -> sa.Connection:
        try:
            return self._write_connections.pop()
        except IndexError:
            return self.engine.connect().execution_options(grantkeeper_write=True)

    def _begin_at_once(self, conn: sa.Connection) -> sa.RootTransaction | None:
        """``BEGIN IMMEDIATE`` here, on the loop, when nothing makes it wait: the lock between
        processes is free and SQLite's lock is taken within a few milliseconds (another writer
        that does not take the lock file, a migration, holds it longer). Else ``None``, and
        the writer thread waits for both. Most writes then take one thread hop (the commit's)
        instead of two. The caller makes sure no commit of this process is in flight."""
        if not self._between_processes.try_acquire():
            return None
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # Not 0: a reader or a checkpoint holds SQLite's WAL-index locks for microseconds, and
        # a BEGIN that does not wait for those fails (py-spy runs saw "database is locked").
        raw.execute(f"PRAGMA busy_timeout={AT_ONCE_BUSY_TIMEOUT_MS}")
        try:
            return conn.begin()
        except (exc.OperationalError, sqlite3.OperationalError):  # "database is locked"
            conn.rollback()
            self._between_processes.release()
            return None
        except BaseException:
            self._between_processes.release()  # other processes' writers wait on it
            raise
        finally:
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    def _begin(self, conn: sa.Connection) -> sa.RootTransaction:
        """On the writer thread: the lock between processes, then ``BEGIN IMMEDIATE``."""
        self._between_processes.acquire()
        try:
            return conn.begin()
        except BaseException:
            self._between_processes.release()
            raise

    def _commit_and_unlock(self, batch: _Batch) -> None:
        try:
            batch.transaction.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                batch.transaction.rollback()
            raise
        finally:
            self._unlock(batch)

    def _unlock(self, batch: _Batch) -> None:
        # Once per batch: by then the next batch may hold the lock.
        if batch.locked:
            batch.locked = False
            self._between_processes.release()

    async def _commit(self, batch: _Batch, lock: asyncio.Lock) -> None:
        try:
            # Let the writers already waiting for the lock add their statements, then close
            # the batch to newcomers (they start the next one) and commit.
            await asyncio.sleep(0)
            async with lock:
                self._batch = None
            await self._on_writer(lambda: self._commit_and_unlock(batch))
        except BaseException as error:
            with contextlib.suppress(Exception):
                batch.transaction.rollback()
            self._unlock(batch)
            batch.committed.set_exception(error)
            batch.committed.exception()  # retrieved: a batch with no waiter left is no error
            batch.conn.close()  # whatever happened, the next batch starts on a fresh connection
        else:
            batch.committed.set_result(None)
            self._write_connections.append(batch.conn)


class _WriterThread:
    """One thread that runs calls in turn, each settling an asyncio future on its caller's
    loop. A ``ThreadPoolExecutor`` and ``run_in_executor`` did the same through a
    ``concurrent.futures.Future`` (a ``Condition`` each), a semaphore and a chained asyncio
    future: its ``submit`` alone was a fifth of opening a write on the event loop (py-spy)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._shut_down = False

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        if self._shut_down:  # as an executor refuses: the store is closed
            raise RuntimeError("cannot schedule new calls after shutdown")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._start()
        self._calls.put(_Call(call, loop, future))
        return future

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                # A daemon, as an executor's threads are not: an interpreter that exits without
                # closing the store must not hang on a thread waiting for work. A commit cut
                # off by the exit is rolled back by SQLite, and its caller is gone anyway.
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            try:
                result = item.call()
            except BaseException as error:  # handed to the caller, as an executor does
                settle: Callable[[], None] = partial(_fail, item.future, error)
            else:
                settle = partial(_succeed, item.future, result)
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is waiting
                item.loop.call_soon_threadsafe(settle)

    def shutdown(self) -> None:
        """Let the calls already submitted run, then end the thread."""
        self._shut_down = True
        thread = self._thread
        if thread is not None:
            self._calls.put(None)
            thread.join()
            self._thread = None


@dataclass
class _Call(Generic[T]):
    call: Callable[[], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class _WriterLock:
    """An exclusive ``flock`` on ``<database>.writer-lock``, taken and let go on the writer
    thread; a no-op where ``fcntl`` is missing (Windows: SQLite's busy timeout alone)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def beside(cls, database: str) -> _WriterLock:
        if fcntl is None or not database:
            return cls(None)
        # Not the database file itself: closing any descriptor of it would drop the POSIX
        # locks SQLite holds on it in this process.
        return cls(os.open(database + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600))

    def acquire(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; never waits."""
        if self._fd is None or fcntl is None:
            return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _Batch:
    conn: sa.Connection
    transaction: sa.RootTransaction
    committed: asyncio.Future[None]
    locked: bool = True
    """Holds the lock between processes until its commit (or rollback) has run."""


def _as_async(conn: sa.Connection, writes: CompiledWrites | None = None) -> AsyncConnection:
    # Inside a transaction the store only calls execute(); InlineConnection has it with the
    # same signature, so the store's code is the same on every engine.
    return cast(AsyncConnection, InlineConnection(conn, writes))
