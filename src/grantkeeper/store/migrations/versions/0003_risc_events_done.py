"""RISC: mark when a security event was fully applied, so a delivery whose processing died
half-way is processed again on redelivery instead of being dropped as a duplicate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grantkeeper.store.migrations.names import table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    RISC_EVENTS_SEEN = table("risc_events_seen")
    with op.batch_alter_table(RISC_EVENTS_SEEN) as batch:
        batch.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
    # Events recorded before this column existed were processed in the same request.
    seen = sa.table(RISC_EVENTS_SEEN, sa.column("done_at"), sa.column("received_at"))
    op.execute(seen.update().values(done_at=seen.c.received_at))


def downgrade() -> None:
    RISC_EVENTS_SEEN = table("risc_events_seen")
    with op.batch_alter_table(RISC_EVENTS_SEEN) as batch:
        batch.drop_column("done_at")
