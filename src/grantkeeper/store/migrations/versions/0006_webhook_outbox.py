"""The webhook outbox: each notification written with the grant change that causes it, then
delivered from the store (at least once, across restarts and instances).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gk_webhook_outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("seq", name="pk_gk_webhook_outbox"),
        sa.UniqueConstraint("id", name="uq_gk_webhook_outbox_id"),
    )
    op.create_index(
        "ix_gk_webhook_outbox_state_next_attempt_at",
        "gk_webhook_outbox",
        ["state", "next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_gk_webhook_outbox_state_next_attempt_at", "gk_webhook_outbox")
    op.drop_table("gk_webhook_outbox")
