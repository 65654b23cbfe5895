"""De-duplication of security events by ``jti`` (Google: "events may be redelivered").

A row per (issuer, jti), inserted with ``ON CONFLICT DO NOTHING`` in the same short
transaction on SQLite and PostgreSQL: of two deliveries racing on two hosts exactly one gets
to act. The table is created by the store's migration ``0002``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from grantkeeper.store import GrantStore
from grantkeeper.store.tables import UTCDateTime, metadata

risc_events_seen = sa.Table(
    "risc_events_seen",
    metadata,
    sa.Column("jti", sa.String(255), nullable=False),
    sa.Column("issuer", sa.String(255), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("issuer", "jti"),
)


async def claim_event(store: GrantStore, *, issuer: str, jti: str, at: datetime) -> bool:
    """Record the event; ``False`` if it was already recorded (a redelivery)."""
    return await store.insert_if_absent(
        risc_events_seen, {"issuer": issuer, "jti": jti, "received_at": at}, ["issuer", "jti"]
    )


async def release_event(store: GrantStore, *, issuer: str, jti: str) -> None:
    """Forget a claim whose processing failed, so the redelivery is processed."""
    async with store.transaction(write=True) as conn:
        await conn.execute(
            sa.delete(risc_events_seen).where(
                risc_events_seen.c.issuer == issuer, risc_events_seen.c.jti == jti
            )
        )
