"""SQLite write transactions in a group commit: writers that queue behind one share its commit,
each inside its own savepoint, and none returns before its writes are committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.errors import StoreUnavailable
from grantkeeper.store import GrantStore
from grantkeeper.store.sqlite_inline import _WriterThread
from grantkeeper.store.tables import audit_events

pytestmark = pytest.mark.anyio


async def open_store(path: Path, key: str) -> GrantStore:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    return await GrantStore.open(
        f"sqlite:///{path}", KeyRing.from_strings([key]), clock, migrate=True
    )


async def test_queued_writers_share_a_commit_and_a_failure_rolls_back_only_its_own(
    tmp_path: Path,
) -> None:
    key = generate_key("g")
    path = tmp_path / "group.sqlite3"
    store = await open_store(path, key)
    other = await open_store(path, key)  # a second connection pool, as another process has
    commits = 0
    assert store._inline is not None
    original = store._inline._commit

    async def counting(*args: object) -> None:
        nonlocal commits
        commits += 1
        await original(*args)  # type: ignore[arg-type]

    store._inline._commit = counting  # type: ignore[method-assign]

    async def write(i: int) -> None:
        await store.append_audit("group", outcome=f"ok-{i}")

    async def failing_writer() -> None:
        async with store._write() as conn:
            await conn.execute(
                audit_events.insert().values(
                    at=datetime(2026, 1, 1, tzinfo=UTC), kind="group", outcome="lost", detail={}
                )
            )
            raise RuntimeError("this writer fails")

    async def fail() -> None:
        with pytest.raises(RuntimeError):
            await failing_writer()

    async def elsewhere(i: int) -> None:
        await other.append_audit("group", outcome=f"other-{i}")

    try:
        await asyncio.gather(
            *(write(i) for i in range(40)),
            fail(),
            *(elsewhere(i) for i in range(20)),
            *(write(i) for i in range(40, 80)),
        )
        outcomes = [e.outcome for e in await other.list_audit(kind="group", limit=1000)]
    finally:
        await store.close()
        await other.close()
    assert sorted(outcomes) == sorted(
        [f"ok-{i}" for i in range(80)] + [f"other-{i}" for i in range(20)]
    )
    assert 1 <= commits < 80  # 80 writers, fewer commits


async def test_a_writer_cancelled_while_waiting_for_the_file_lock_leaves_the_store_usable(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "locked.sqlite3"
    store = await open_store(path, generate_key("g"))
    assert store._inline is not None
    holder = sqlite3.connect(path, isolation_level=None)  # another process writing
    holder.execute("BEGIN IMMEDIATE")
    try:
        writer = asyncio.ensure_future(store.append_audit("group", outcome="cancelled"))
        lock = store._inline._write_lock()
        while not lock.locked():
            await asyncio.sleep(0)
        writer.cancel()
        for _ in range(20):
            await asyncio.sleep(0)
        # Its BEGIN still waits on the writer thread: the caller waits with it, so the
        # connection is never used from two threads at once.
        assert not writer.done()
        holder.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await writer
        assert not lock.locked()
        await store.append_audit("group", outcome="after")
        outcomes = [e.outcome for e in await store.list_audit(kind="group")]
        assert outcomes == ["after"]  # the cancelled write left nothing behind
    finally:
        holder.close()
        await store.close()


async def test_a_writer_waits_for_another_processs_lock_and_goes_the_moment_it_is_let_go(
    tmp_path: Path,
) -> None:
    import fcntl
    import os
    import stat

    path = tmp_path / "locked.sqlite3"
    store = await open_store(path, generate_key("w"))
    try:
        await store.append_audit("warm")
        lock_file = Path(f"{path}.writer-lock")
        assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
        # Another process's writer holds the lock (a descriptor of our own stands in for it).
        fd = os.open(lock_file, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            write = asyncio.ensure_future(store.append_audit("queued"))
            await asyncio.sleep(0.3)
            assert not write.done()  # it waits; it does not fail with "database is locked"
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        await asyncio.wait_for(write, 5)
        kinds = [e.kind for e in await store.list_audit(None, limit=10)]
        assert "queued" in kinds
    finally:
        await store.close()


async def test_a_writer_that_does_not_take_the_lock_file_is_waited_for_off_the_event_loop(
    tmp_path: Path,
) -> None:
    import sqlite3
    import time

    path = tmp_path / "foreign.sqlite3"
    store = await open_store(path, generate_key("f"))
    try:
        await store.append_audit("warm")
        # A migration or another tool: SQLite's write lock held without the lock file.
        foreign = sqlite3.connect(path, isolation_level=None)
        foreign.execute("BEGIN IMMEDIATE")
        try:
            write = asyncio.ensure_future(store.append_audit("after the foreign writer"))
            stalls = []
            for _ in range(20):  # the loop keeps turning while the write waits
                began = time.perf_counter()
                await asyncio.sleep(0.01)
                stalls.append(time.perf_counter() - began)
            assert not write.done()
            assert max(stalls) < 0.2
        finally:
            foreign.execute("COMMIT")
            foreign.close()
        await asyncio.wait_for(write, 5)
        await store.append_audit("and the next one at once")
        kinds = [e.kind for e in await store.list_audit(None, limit=10)]
        assert {"after the foreign writer", "and the next one at once"} <= set(kinds)
    finally:
        await store.close()


async def test_a_write_that_cannot_get_the_lock_in_time_is_store_unavailable_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from grantkeeper.errors import StoreUnavailable
    from grantkeeper.store import engine as store_engine
    from grantkeeper.store import sqlite_inline

    # BEGIN IMMEDIATE goes straight to sqlite3 (not through SQLAlchemy, which maps errors).
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr(sqlite_inline, "SQLITE_BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "busy.sqlite3"
    store = await open_store(path, generate_key("b"))
    try:
        await store.append_audit("warm")
        foreign = sqlite3.connect(path, isolation_level=None)
        foreign.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable):
                await store.append_audit("never")
        finally:
            foreign.execute("ROLLBACK")
            foreign.close()
        await store.append_audit("after")  # the store works on
    finally:
        await store.close()


async def test_write_transactions_keep_their_connections_and_a_failed_commit_drops_its_own(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "kept.sqlite3", generate_key("g"))
    inline = store._inline
    assert inline is not None
    checkouts = 0

    def counted(*args: object) -> None:
        nonlocal checkouts
        checkouts += 1

    sa.event.listen(inline.engine, "checkout", counted)
    original = inline._commit_and_unlock
    failed: list[object] = []

    def failing_once(batch: Any) -> None:
        if not failed:
            failed.append(batch.conn)
            batch.transaction.rollback()
            raise sqlite3.OperationalError("disk I/O error")
        original(batch)

    try:
        for i in range(30):  # one after another: a batch each
            await store.append_audit("kept", outcome=f"ok-{i}")
        assert checkouts == 1  # every batch on the same connection
        inline._commit_and_unlock = failing_once  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable):
            await store.append_audit("kept", outcome="lost")
        assert failed
        assert failed[0] not in inline._write_connections
        await store.append_audit("kept", outcome="after")  # on a fresh connection
        assert checkouts == 2
        outcomes = [e.outcome for e in await store.list_audit(kind="kept", limit=100)]
    finally:
        await store.close()
    assert sorted(outcomes) == sorted([f"ok-{i}" for i in range(30)] + ["after"])
    assert not any(t.name == "grantkeeper-sqlite-writer" for t in threading.enumerate())


def test_the_writer_thread_outlives_a_loop_that_closed_before_its_call_ended() -> None:
    writer = _WriterThread("grantkeeper-test-writer")
    started, release = threading.Event(), threading.Event()

    async def leave_early() -> None:
        writer.submit(lambda: (started.set(), release.wait(5)))
        await asyncio.to_thread(started.wait, 5)

    async def call_again() -> int:
        return await writer.submit(lambda: 42)

    async def fail() -> None:
        def boom() -> None:
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await writer.submit(boom)

    try:
        asyncio.run(leave_early())  # its loop is closed while the call still runs
        release.set()
        assert asyncio.run(call_again()) == 42
        asyncio.run(fail())  # an error reaches its caller, and the thread goes on
        assert asyncio.run(call_again()) == 42
    finally:
        release.set()
        writer.shutdown()
    assert not any(t.name == "grantkeeper-test-writer" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="after shutdown"):
        asyncio.run(call_again())
