"""The webhook outbox: notifications written in the transaction of the change that causes them,
claimed by deliverers with a lease, and marked delivered, retried or failed.

The store does not know what a notification says: the keeper builds each
:class:`OutboxMessage` and hands it to the write that changes the grant (``outbox=`` on
:meth:`set_status`, :meth:`erase_tokens`, :meth:`record_sign_in`, …), so the message exists if
and only if the change was committed.

Claiming is safe with any number of deliverers, in any number of processes: PostgreSQL picks
due rows ``FOR UPDATE SKIP LOCKED`` (two claimers never wait on, nor take, the same row);
SQLite's write transaction (``BEGIN IMMEDIATE``) already admits one writer at a time, and the
claiming ``UPDATE`` repeats the due-and-free condition. A claim counts as an attempt and holds
the row until its lease lapses, so a row whose deliverer died is claimed again (at least once),
and a message that kills every deliverer still ends ``failed`` after its attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import webhook_outbox

T = TypeVar("T")

#: Messages to write with a change, or how to make them from its result (written only if the
#: change happened: a compare-and-swap that lost writes none).
Outbox = Sequence["OutboxMessage"] | Callable[[T], Sequence["OutboxMessage"]]

LAST_ERROR_CHARS = 200
#: A message's row, built once: it may run inside a sign-in's write (a reactivated grant's).
OUTBOX_INSERT = hot(webhook_outbox.insert())
#: ``last_error`` of a message whose last attempt's deliverer died before recording an outcome.
DELIVERER_LOST = "deliverer lost: its claim lapsed during the last attempt"


class OutboxState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A notification to write: ``id`` is its ``webhook-id`` on every attempt; ``body`` the
    JSON payload (never a token)."""

    id: str
    type: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A stored notification and where its delivery stands."""

    seq: int
    id: str
    type: str
    body: str
    created_at: datetime
    state: str
    attempts: int
    """Deliveries started (claims), including the one in flight."""
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None

    @property
    def message(self) -> OutboxMessage:
        return OutboxMessage(self.id, self.type, self.body, self.created_at)


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        seq=row.seq,
        id=row.id,
        type=row.type,
        body=row.body,
        created_at=row.created_at,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


def outbox_for(outbox: Outbox[T] | None, result: T) -> Sequence[OutboxMessage]:
    """The messages ``outbox`` names for a change that ended with ``result``."""
    if outbox is None:
        return ()
    if callable(outbox):
        return outbox(result)
    return outbox


async def enqueue(conn: AsyncConnection, messages: Sequence[OutboxMessage]) -> None:
    """Write ``messages`` inside the caller's transaction, due at once."""
    if not messages:
        return
    await conn.execute(OUTBOX_INSERT, _rows(messages))


def _rows(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "type": m.type,
            "body": m.body,
            "created_at": m.created_at,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": m.created_at,
        }
        for m in messages
    ]


class WebhookOutbox(StoreCore):
    """Writing, claiming, finishing, listing and replaying outbox messages."""

    async def enqueue_webhooks(
        self, messages: Sequence[OutboxMessage], *, keep_existing: bool = False
    ) -> None:
        """Write notifications that go with no grant change (an expiring grant, a security
        event the app must act on) in a transaction of their own. ``keep_existing``: a message
        whose id is already stored is skipped (a notice due once per fact, written by every
        sweep), not an error."""
        if not messages:
            return
        if not keep_existing:
            async with self._write() as conn:
                await enqueue(conn, messages)
            return
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        async with self._write() as conn:
            await conn.execute(
                insert(webhook_outbox).on_conflict_do_nothing(index_elements=["id"]),
                _rows(messages),
            )

    async def claim_webhooks(
        self, owner: str, lease: timedelta, limit: int, *, max_attempts: int | None = None
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` due messages (pending, due, not held by a live lease) for
        ``owner`` until ``lease`` from now; each claim counts as an attempt. Oldest first.

        With ``max_attempts``, a message that has had them all and is held by no live lease
        (its last deliverer died mid-POST, so no one recorded the outcome) is marked ``failed``
        in the same transaction instead of being claimed again and again."""
        now = self._clock.now()
        no_live_lease = sa.or_(
            webhook_outbox.c.lease_expires_at.is_(None),
            webhook_outbox.c.lease_expires_at <= now,
        )
        pending = webhook_outbox.c.state == OutboxState.PENDING.value
        due: tuple[sa.ColumnElement[bool], ...] = (
            pending,
            webhook_outbox.c.next_attempt_at <= now,
            no_live_lease,
        )
        if max_attempts is not None:
            due = (*due, webhook_outbox.c.attempts < max_attempts)
        pick = (
            sa.select(webhook_outbox.c.seq)
            .where(*due)
            .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.seq)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        async with self._write() as conn:
            if max_attempts is not None:
                await conn.execute(
                    webhook_outbox.update()
                    .where(pending, no_live_lease, webhook_outbox.c.attempts >= max_attempts)
                    .values(
                        state=OutboxState.FAILED.value,
                        last_error=sa.case(
                            (webhook_outbox.c.lease_expires_at.is_not(None), DELIVERER_LOST),
                            else_=webhook_outbox.c.last_error,
                        ),
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
            seqs = [row.seq for row in (await conn.execute(pick)).all()]
            if not seqs:
                return []
            rows = (
                await conn.execute(
                    webhook_outbox.update()
                    .where(webhook_outbox.c.seq.in_(seqs), *due)
                    .values(
                        lease_owner=owner,
                        lease_expires_at=now + lease,
                        attempts=webhook_outbox.c.attempts + 1,
                    )
                    .returning(*webhook_outbox.c)
                )
            ).all()
        return sorted((_entry(row) for row in rows), key=lambda e: (e.next_attempt_at, e.seq))

    async def finish_webhook(
        self,
        message_id: str,
        owner: str,
        *,
        delivered: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Record how ``owner``'s attempt ended: delivered; or failed, to be tried again at
        ``retry_at`` (``None``: given up, ``failed``). ``False`` if ``owner`` no longer held the
        message (its lease lapsed and another deliverer took it)."""
        now = self._clock.now()
        values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
        if delivered:
            values.update(state=OutboxState.DELIVERED.value, delivered_at=now, last_error=None)
        else:
            values["last_error"] = (error or "unknown error")[:LAST_ERROR_CHARS]
            if retry_at is None:
                values["state"] = OutboxState.FAILED.value
            else:
                values["next_attempt_at"] = retry_at
        async with self._write() as conn:
            result = await conn.execute(
                webhook_outbox.update()
                .where(
                    webhook_outbox.c.id == message_id,
                    webhook_outbox.c.lease_owner == owner,
                    webhook_outbox.c.state == OutboxState.PENDING.value,
                )
                .values(**values)
            )
        return result.rowcount == 1

    async def list_webhooks(
        self, *, state: str | None = None, before_seq: int | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        """Messages, newest first; ``before_seq`` pages (messages older than that one)."""
        query = webhook_outbox.select().order_by(webhook_outbox.c.seq.desc()).limit(limit)
        if state is not None:
            query = query.where(webhook_outbox.c.state == state)
        if before_seq is not None:
            query = query.where(webhook_outbox.c.seq < before_seq)
        async with self._read() as conn:
            return [_entry(row) for row in (await conn.execute(query)).all()]

    async def get_webhooks(self, ids: Collection[str]) -> list[OutboxEntry]:
        query = (
            webhook_outbox.select()
            .where(webhook_outbox.c.id.in_(list(ids)))
            .order_by(webhook_outbox.c.seq)
        )
        async with self._read() as conn:
            return [_entry(row) for row in (await conn.execute(query)).all()]

    async def replay_webhooks(
        self, ids: Collection[str] | None = None, *, failed: bool = False
    ) -> list[str]:
        """Make messages pending and due now with their attempts reset (same ``id``): those
        named by ``ids``, and with ``failed`` every failed one. Returns the ids reset."""
        conditions: list[sa.ColumnElement[bool]] = []
        if ids:
            conditions.append(webhook_outbox.c.id.in_(list(ids)))
        if failed:
            conditions.append(webhook_outbox.c.state == OutboxState.FAILED.value)
        if not conditions:
            return []
        where = sa.or_(*conditions)
        now = self._clock.now()
        async with self._write() as conn:
            found = [
                row.id
                for row in (
                    await conn.execute(
                        sa.select(webhook_outbox.c.id).where(where).order_by(webhook_outbox.c.seq)
                    )
                ).all()
            ]
            if found:
                await conn.execute(
                    webhook_outbox.update()
                    .where(webhook_outbox.c.id.in_(found))
                    .values(
                        state=OutboxState.PENDING.value,
                        attempts=0,
                        next_attempt_at=now,
                        delivered_at=None,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
        return found

    async def prune_webhooks(self, delivered_before: datetime) -> int:
        """Delete messages delivered before ``delivered_before`` (failed and pending ones
        stay). Returns how many."""
        async with self._write() as conn:
            result = await conn.execute(
                webhook_outbox.delete().where(
                    webhook_outbox.c.state == OutboxState.DELIVERED.value,
                    webhook_outbox.c.delivered_at < delivered_before,
                )
            )
        return result.rowcount

    async def count_pending_webhooks(self) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(webhook_outbox)
            .where(webhook_outbox.c.state == OutboxState.PENDING.value)
        )
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def next_webhook_due(self) -> datetime | None:
        """When the earliest pending message is due (a deliverer sleeps until then)."""
        query = (
            sa.select(webhook_outbox.c.next_attempt_at)
            .where(webhook_outbox.c.state == OutboxState.PENDING.value)
            .order_by(webhook_outbox.c.next_attempt_at)
            .limit(1)
        )
        async with self._read() as conn:
            due: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return due
