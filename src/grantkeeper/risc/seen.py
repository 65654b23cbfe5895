"""De-duplication of security events by ``jti`` (Google: "events may be redelivered").

A row per (issuer, jti), inserted with ``ON CONFLICT DO NOTHING`` in the same short
transaction on SQLite and PostgreSQL: of two deliveries racing on two hosts exactly one gets
to act. The table is created by the store's migration ``0002``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from grantkeeper.store import GrantStore
from grantkeeper.store.engine import transaction
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
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    statement = (
        insert(risc_events_seen)
        .values(issuer=issuer, jti=jti, received_at=at)
        .on_conflict_do_nothing(index_elements=["issuer", "jti"])
        # RETURNING rather than rowcount: drivers disagree on rowcount for ON CONFLICT.
        .returning(risc_events_seen.c.jti)
    )
    # GrantStore has no public hook for tables of other features; its engine is the only
    # way to share its connection pool and PostgreSQL schema.
    async with transaction(store._engine, write=True) as conn:
        inserted = (await conn.execute(statement)).first()
    return inserted is not None


async def release_event(store: GrantStore, *, issuer: str, jti: str) -> None:
    """Forget a claim whose processing failed, so the redelivery is processed."""
    async with transaction(store._engine, write=True) as conn:
        await conn.execute(
            sa.delete(risc_events_seen).where(
                risc_events_seen.c.issuer == issuer, risc_events_seen.c.jti == jti
            )
        )
