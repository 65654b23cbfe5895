"""Hand-outs of stored access tokens, written together.

A token read writes one thing: the ``token`` audit event of a service key's hand-out (and, once
a minute per grant, its last use). Written one transaction per read, that write cost twice the
read itself. Hand-outs made while the previous batch is being written (or at least in the same
turn of the event loop) are collected and written with one ``executemany`` per table in one
transaction, and nobody's call returns before that transaction has committed: a token never
leaves before its hand-out is on disk, as before; the store just writes many hand-outs for the
price of one. One batch is written at a time per event loop: an idle keeper writes a lone
hand-out at once, a busy one writes more per transaction.

A fast write (PostgreSQL's in well under a millisecond) left batches of one or two under load,
and the write was most of a token read's CPU. So while the keeper is busy (the batch before
held several hand-outs and was written less than :data:`BUSY_WITHIN_SECONDS` ago) a new batch
lingers :data:`LINGER_SECONDS` first. Measured side by side (``bench/bench_side_by_side.py``,
4,000 reads, 16 clients, two runs each, before → after): CPU per read SQLite 0.68/0.74 →
0.35/0.52 ms, PostgreSQL 0.83/0.81 → 0.58/0.82 ms; read p99 about the same or lower; PostgreSQL's
read p50 2-4 ms higher. Batches of one never linger, so a lightly loaded keeper pays nothing.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grantkeeper.store.audit_log import AUDIT_INSERT, audit_row
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.store_core import OF_GRANT, StoreCore, of_grant, param
from grantkeeper.store.tables import grants

#: A batch lingers this long for more hand-outs to join it while the keeper is busy: the batch
#: before it (on this event loop) held several hand-outs and was written less than
#: BUSY_WITHIN_SECONDS ago.
LINGER_SECONDS = 0.002
BUSY_WITHIN_SECONDS = 0.01

#: A hand-out's last use (to the minute), built once.
LAST_USED = hot(grants.update().where(*OF_GRANT).values(last_used_at=param(grants.c.last_used_at)))


@dataclass
class _Pending:
    """Hand-outs waiting for their write, and the future of that write."""

    written: asyncio.Future[None]
    after: asyncio.Future[None] | None
    """The write of the batch before this one (on this loop), while it is not done."""
    audits: list[dict[str, Any]] = field(default_factory=list)
    last_used: list[dict[str, Any]] = field(default_factory=list)
    hand_outs: int = 0
    """Calls in this batch (one may add a row to each list)."""


class HandOutLog(StoreCore):
    """The write of every hand-out of a stored token."""

    _pending_hand_outs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pending] | None = None
    _last_hand_outs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[None]]
    _hand_outs_busy_at: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float]
    """When a batch of several hand-outs was last written, per event loop."""
    _hand_out_writes: set[asyncio.Task[None]] | None = None

    async def record_hand_out(
        self,
        sub: str,
        client_id: str,
        *,
        used_at: datetime | None = None,
        audit_detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A stored access token handed out: ``used_at`` becomes the grant's ``last_used_at``
        (the version stays), ``audit_detail`` a ``token`` audit event (outcome ``ok``). Returns
        once that is committed, written with the other hand-outs of this moment. With neither,
        nothing is written.

        Raises:
            StoreUnavailable: the write failed (then no hand-out of its batch is written).
            TypeError, ValueError: ``audit_detail`` is not JSON (nothing is written for it,
                and the batch it would have joined is not affected).
        """
        if used_at is None and audit_detail is None:
            return
        if audit_detail is not None:
            # Here, not in the batch's write: psycopg serializes JSON while it sends the rows,
            # so a detail it cannot serialize failed the batch after the rows before it had
            # been sent (and, without BEGIN, committed).
            json.dumps(audit_detail)
        pending = self._hand_outs_now()
        pending.hand_outs += 1
        if used_at is not None:
            pending.last_used.append({**of_grant(sub, client_id), "p_last_used_at": used_at})
        if audit_detail is not None:
            pending.audits.append(
                audit_row(self._clock.now(), "token", sub, client_id, "ok", audit_detail)
            )
        # Shielded: a caller that goes away does not cancel the others' write.
        await asyncio.shield(pending.written)

    def _hand_outs_now(self) -> _Pending:
        """The batch open on this event loop, or a new one with its write scheduled."""
        loop = asyncio.get_running_loop()
        if self._pending_hand_outs is None:
            self._pending_hand_outs = weakref.WeakKeyDictionary()
            self._last_hand_outs = weakref.WeakKeyDictionary()
            self._hand_outs_busy_at = weakref.WeakKeyDictionary()
            self._hand_out_writes = set()
        pending = self._pending_hand_outs.get(loop)
        if pending is None:
            before = self._last_hand_outs.get(loop)
            after = before if before is not None and not before.done() else None
            pending = _Pending(loop.create_future(), after)
            self._pending_hand_outs[loop] = pending
            self._last_hand_outs[loop] = pending.written
            task = loop.create_task(self._write_hand_outs(loop, pending))
            assert self._hand_out_writes is not None
            self._hand_out_writes.add(task)  # a task nobody references may be collected
            task.add_done_callback(self._hand_out_writes.discard)
        return pending

    async def _write_hand_outs(self, loop: asyncio.AbstractEventLoop, pending: _Pending) -> None:
        assert self._pending_hand_outs is not None
        try:
            # Hand-outs join while the batch before is being written (one write at a time
            # per loop: the busier the keeper, the more share a write), and at least those of
            # this turn of the loop; later ones start the next batch.
            if pending.after is not None:
                await asyncio.wait([pending.after])
            await asyncio.sleep(0)
            if self._busy(loop):
                await asyncio.sleep(LINGER_SECONDS)
            self._close_batch(loop, pending)
            # Audit rows alone are one statement: PostgreSQL runs it without BEGIN and COMMIT
            # (psycopg sends an executemany as one pipeline ending in one Sync, so its rows
            # still commit or fail together on any error of the server's; the details are
            # checked to be JSON before they join): a lone hand-out's write cost ~25% less CPU.
            writing = (
                self._write(direct=True) if pending.last_used else self._write_one(direct=True)
            )
            async with writing as conn:
                if pending.last_used:
                    await conn.execute(LAST_USED, _one_per_grant_in_order(pending.last_used))
                if pending.audits:
                    await conn.execute(AUDIT_INSERT, pending.audits)
        except BaseException as error:
            # Cancelled before it closed (a loop shutting down): no later hand-out may join a
            # batch whose write is over.
            self._close_batch(loop, pending)
            pending.written.set_exception(error)
            pending.written.exception()  # retrieved: a batch whose callers left is no error
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            pending.written.set_result(None)
            if pending.hand_outs > 1:
                self._hand_outs_busy_at[loop] = loop.time()
        finally:
            # The finished write's future holds the loop: kept as a weak dictionary's value,
            # it would keep its key (the loop) alive for good.
            if self._last_hand_outs.get(loop) is pending.written:
                del self._last_hand_outs[loop]

    def _busy(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Hand-outs are arriving faster than one write each: lingering LINGER_SECONDS lets
        the next few share this batch's write (each write cost ~0.3-0.5 ms of CPU, most of a
        token read's). An idle keeper, or one whose batches hold one hand-out each, writes at
        once: there lingering would add latency and save nothing."""
        busy_at = self._hand_outs_busy_at.get(loop)
        return busy_at is not None and loop.time() - busy_at < BUSY_WITHIN_SECONDS

    def _close_batch(self, loop: asyncio.AbstractEventLoop, pending: _Pending) -> None:
        assert self._pending_hand_outs is not None
        if self._pending_hand_outs.get(loop) is pending:
            del self._pending_hand_outs[loop]


def _one_per_grant_in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last uses, one per grant (the latest), ordered by grant: two batches of two
    processes that lock the same grants' rows lock them in the same order, so PostgreSQL never
    finds them deadlocked (a review found [A, B] against [B, A] did)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["w_sub"], row["w_client_id"])
        if key not in latest or row["p_last_used_at"] > latest[key]["p_last_used_at"]:
            latest[key] = row
    return [latest[key] for key in sorted(latest)]
