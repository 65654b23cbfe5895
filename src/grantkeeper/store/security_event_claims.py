"""De-duplication of security events by ``jti`` (Google: "events may be redelivered").

A row per (issuer, jti), inserted with ``ON CONFLICT DO NOTHING`` in one short transaction on
SQLite and PostgreSQL: of two deliveries racing on two hosts exactly one gets to act. The table
is created by the store's migrations ``0002`` and ``0003``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import risc_events_seen

#: A claim whose holder has not finished after this long is taken over by a redelivery.
STALE_CLAIM = timedelta(seconds=30)


class SecurityEventClaims(StoreCore):
    """Which security events (by issuer and ``jti``) are claimed or done."""

    async def claim_security_event(self, *, issuer: str, jti: str, at: datetime) -> bool:
        """Claim the event for processing; ``False`` if it was already processed, or is being
        processed right now by another delivery (a redelivery). A claim left unfinished for
        :data:`STALE_CLAIM` (its process died) is taken over."""
        table = risc_events_seen
        insert = (
            self._insert(table)
            .values(issuer=issuer, jti=jti, received_at=at, done_at=None)
            .on_conflict_do_nothing(index_elements=["issuer", "jti"])
            # RETURNING, not rowcount: psycopg reports -1 for this statement.
            .returning(sa.literal(1))
        )
        async with self._write() as conn:
            if (await conn.execute(insert)).first() is not None:
                return True
            taken = await conn.execute(
                sa.update(table)
                .where(
                    table.c.issuer == issuer,
                    table.c.jti == jti,
                    table.c.done_at.is_(None),
                    table.c.received_at <= at - STALE_CLAIM,
                )
                .values(received_at=at)
            )
        return taken.rowcount == 1

    async def finish_security_event(self, *, issuer: str, jti: str, at: datetime) -> None:
        """The event's effects are all stored: from now on a redelivery is only a duplicate."""
        table = risc_events_seen
        async with self._write() as conn:
            await conn.execute(
                sa.update(table)
                .where(table.c.issuer == issuer, table.c.jti == jti)
                .values(done_at=at)
            )

    async def release_security_event(self, *, issuer: str, jti: str) -> None:
        """Forget a claim whose processing failed, so the redelivery is processed."""
        table = risc_events_seen
        async with self._write() as conn:
            await conn.execute(sa.delete(table).where(table.c.issuer == issuer, table.c.jti == jti))
