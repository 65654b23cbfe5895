"""RISC: remember the ``jti`` of every security event token received, to drop redeliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grantkeeper.store.migrations.names import table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    RISC_EVENTS_SEEN = table("risc_events_seen")
    op.create_table(
        RISC_EVENTS_SEEN,
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name=f"pk_{RISC_EVENTS_SEEN}"),
    )


def downgrade() -> None:
    RISC_EVENTS_SEEN = table("risc_events_seen")
    op.drop_table(RISC_EVENTS_SEEN)
