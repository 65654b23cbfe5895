"""De-duplication of security events by ``jti`` (Google: "events may be redelivered").

A row per (issuer, jti), inserted with ``ON CONFLICT DO NOTHING`` in the same short
transaction on SQLite and PostgreSQL: of two deliveries racing on two hosts exactly one gets
to act. The table is created by the store's migration ``0002``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from grantkeeper.store import GrantStore
from grantkeeper.store.tables import UTCDateTime, metadata

risc_events_seen = sa.Table(
    "risc_events_seen",
    metadata,
    sa.Column("jti", sa.String(255), nullable=False),
    sa.Column("issuer", sa.String(255), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.PrimaryKeyConstraint("issuer", "jti"),
)

#: A claim whose holder has not finished after this long is taken over by a redelivery.
STALE_CLAIM = timedelta(seconds=30)


async def claim_event(store: GrantStore, *, issuer: str, jti: str, at: datetime) -> bool:
    """Claim the event for processing; ``False`` if it was already processed, or is being
    processed right now by another delivery (a redelivery). A claim left unfinished for
    :data:`STALE_CLAIM` (its process died) is taken over."""
    values = {"issuer": issuer, "jti": jti, "received_at": at, "done_at": None}
    if await store.insert_if_absent(risc_events_seen, values, ["issuer", "jti"]):
        return True
    async with store.transaction(write=True) as conn:
        taken = await conn.execute(
            sa.update(risc_events_seen)
            .where(
                risc_events_seen.c.issuer == issuer,
                risc_events_seen.c.jti == jti,
                risc_events_seen.c.done_at.is_(None),
                risc_events_seen.c.received_at <= at - STALE_CLAIM,
            )
            .values(received_at=at)
        )
    return taken.rowcount == 1


async def finish_event(store: GrantStore, *, issuer: str, jti: str, at: datetime) -> None:
    """The event's effects are all stored: from now on a redelivery is only a duplicate."""
    async with store.transaction(write=True) as conn:
        await conn.execute(
            sa.update(risc_events_seen)
            .where(risc_events_seen.c.issuer == issuer, risc_events_seen.c.jti == jti)
            .values(done_at=at)
        )


async def release_event(store: GrantStore, *, issuer: str, jti: str) -> None:
    """Forget a claim whose processing failed, so the redelivery is processed."""
    async with store.transaction(write=True) as conn:
        await conn.execute(
            sa.delete(risc_events_seen).where(
                risc_events_seen.c.issuer == issuer, risc_events_seen.c.jti == jti
            )
        )
