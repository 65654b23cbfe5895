"""Initial schema: users, grants, audit events, sign-in replay cache.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grantkeeper.store.migrations.names import table

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    USERS, GRANTS, AUDIT_EVENTS, SIGNIN_REPLAYS = (
        table("users"),
        table("grants"),
        table("audit_events"),
        table("signin_replays"),
    )
    op.create_table(
        USERS,
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
        sa.PrimaryKeyConstraint("sub", name=f"pk_{USERS}"),
    )
    op.create_table(
        GRANTS,
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
        sa.PrimaryKeyConstraint("id", name=f"pk_{GRANTS}"),
        sa.ForeignKeyConstraint(
            ["sub"], [f"{USERS}.sub"], name=f"fk_{GRANTS}_sub_{USERS}", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("sub", "client_id", name=f"uq_{GRANTS}_sub_client_id"),
    )
    op.create_index(f"ix_{GRANTS}_refresh_token_sha512x2", GRANTS, ["refresh_token_sha512x2"])
    op.create_index(
        f"ix_{GRANTS}_refresh_token_prefix_sha256", GRANTS, ["refresh_token_prefix_sha256"]
    )
    op.create_table(
        AUDIT_EVENTS,
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255)),
        sa.Column("client_id", sa.String(255)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{AUDIT_EVENTS}"),
    )
    op.create_index(f"ix_{AUDIT_EVENTS}_sub_at", AUDIT_EVENTS, ["sub", "at"])
    op.create_table(
        SIGNIN_REPLAYS,
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("sub", sa.String(255)),
        sa.Column("response_json", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("code_hash", name=f"pk_{SIGNIN_REPLAYS}"),
    )
    op.create_index(f"ix_{SIGNIN_REPLAYS}_sub", SIGNIN_REPLAYS, ["sub"])
    op.create_index(f"ix_{SIGNIN_REPLAYS}_expires_at", SIGNIN_REPLAYS, ["expires_at"])


def downgrade() -> None:
    USERS, GRANTS, AUDIT_EVENTS, SIGNIN_REPLAYS = (
        table("users"),
        table("grants"),
        table("audit_events"),
        table("signin_replays"),
    )
    op.drop_table(SIGNIN_REPLAYS)
    op.drop_table(AUDIT_EVENTS)
    op.drop_table(GRANTS)
    op.drop_table(USERS)
