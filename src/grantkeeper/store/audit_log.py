"""The audit log: append-only events (never a token), newest first when listed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.records import AuditEvent
from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import audit_events
from grantkeeper.store.webhook_outbox import OutboxMessage, enqueue

#: Built once: parameters per call (one event is written in nearly every write).
AUDIT_INSERT = hot(audit_events.insert())


class AuditLog(StoreCore):
    """Audit events, appended on their own or inside another write."""

    async def append_audit(
        self,
        kind: str,
        *,
        sub: str | None = None,
        client_id: str | None = None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
        outbox: Sequence[OutboxMessage] = (),
    ) -> None:
        """Append an audit event. ``detail`` must be JSON-serializable and never hold a token.
        ``outbox``: notifications written in the same transaction."""
        async with self._write() as conn:
            await enqueue(conn, outbox)
            await self._audit(
                conn,
                self._clock.now(),
                kind,
                sub=sub,
                client_id=client_id,
                outcome=outcome,
                detail=detail or {},
            )

    async def list_audit(
        self,
        sub: str | None = None,
        *,
        kind: str | None = None,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first; ``before_id`` pages (events older than that id),
        ``since``/``until`` bound their time (inclusive, exclusive)."""
        query = audit_events.select().order_by(audit_events.c.id.desc()).limit(limit)
        if sub is not None:
            query = query.where(audit_events.c.sub == sub)
        if kind is not None:
            query = query.where(audit_events.c.kind == kind)
        if since is not None:
            query = query.where(audit_events.c.at >= since)
        if until is not None:
            query = query.where(audit_events.c.at < until)
        if before_id is not None:
            query = query.where(audit_events.c.id < before_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEvent(
                id=r.id,
                at=r.at,
                kind=r.kind,
                sub=r.sub,
                client_id=r.client_id,
                outcome=r.outcome,
                detail=r.detail,
            )
            for r in rows
        ]

    @staticmethod
    async def _audit(
        conn: AsyncConnection,
        at: datetime,
        kind: str,
        *,
        sub: str | None,
        client_id: str | None,
        outcome: str,
        detail: Mapping[str, Any],
    ) -> None:
        await conn.execute(AUDIT_INSERT, audit_row(at, kind, sub, client_id, outcome, detail))


def audit_row(
    at: datetime,
    kind: str,
    sub: str | None,
    client_id: str | None,
    outcome: str,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """The parameters of :data:`AUDIT_INSERT` for one event (a list of them: one statement
    for several)."""
    return {
        "at": at,
        "kind": kind,
        "sub": sub,
        "client_id": client_id,
        "outcome": outcome,
        "detail": dict(detail),
    }
