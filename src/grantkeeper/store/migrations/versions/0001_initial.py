"""Initial schema: users, grants, audit events, sign-in replay cache.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("email_verified", sa.Boolean),
        sa.Column("name", sa.String(512)),
        sa.Column("picture", sa.Text),
        sa.Column("locale", sa.String(64)),
        sa.Column("given_name", sa.String(255)),
        sa.Column("family_name", sa.String(255)),
        sa.Column("hd", sa.String(255)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sub", name="pk_users"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False, server_default=""),
        sa.Column("refresh_token", sa.Text),
        sa.Column("refresh_token_kid", sa.String(32)),
        sa.Column("refresh_token_sha512x2", sa.String(88)),
        sa.Column("refresh_token_prefix_sha256", sa.String(64)),
        sa.Column("refresh_token_expires_at", TIMESTAMP),
        sa.Column("access_token", sa.Text),
        sa.Column("access_token_kid", sa.String(32)),
        sa.Column("access_token_expires_at", TIMESTAMP),
        sa.Column("status", sa.String(32), nullable=False, server_default="active"),
        sa.Column("status_reason", sa.String(255)),
        sa.Column("status_changed_at", TIMESTAMP),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP),
        sa.Column("last_refreshed_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("id", name="pk_grants"),
        sa.ForeignKeyConstraint(
            ["sub"], ["users.sub"], name="fk_grants_sub_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("sub", "client_id", name="uq_grants_sub_client_id"),
    )
    op.create_index("ix_grants_refresh_token_sha512x2", "grants", ["refresh_token_sha512x2"])
    op.create_index(
        "ix_grants_refresh_token_prefix_sha256", "grants", ["refresh_token_prefix_sha256"]
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255)),
        sa.Column("client_id", sa.String(255)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_sub_at", "audit_events", ["sub", "at"])
    op.create_table(
        "signin_replays",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255)),
        sa.Column("response_json", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("code_hash", name="pk_signin_replays"),
    )
    op.create_index("ix_signin_replays_sub", "signin_replays", ["sub"])
    op.create_index("ix_signin_replays_expires_at", "signin_replays", ["expires_at"])


def downgrade() -> None:
    op.drop_table("signin_replays")
    op.drop_table("audit_events")
    op.drop_table("grants")
    op.drop_table("users")
