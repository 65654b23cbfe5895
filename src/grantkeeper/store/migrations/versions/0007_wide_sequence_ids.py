"""64-bit ids for the audit log and the webhook outbox on PostgreSQL.

Every token hand-out writes an audit record, so a busy keeper passes 2**31 of them (about 250
days at the token API's default limit of 6,000 a minute for one key): PostgreSQL's INTEGER
column and its sequence would then refuse every audited write, token reads included. SQLite's
INTEGER PRIMARY KEY already holds 64 bits.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("gk_audit_events", "id"), ("gk_webhook_outbox", "seq"))


def _widen(type_: type[sa.Integer], sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=type_(), existing_nullable=False)
        # The serial's sequence has a type of its own (and so a maximum): widen it too. Its
        # maximum follows the type when it was the old type's.
        op.execute(
            f"DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS {sql_type}', "
            f"pg_get_serial_sequence('{table}', '{column}')); END $$"
        )


def upgrade() -> None:
    _widen(sa.BigInteger, "bigint")


def downgrade() -> None:
    _widen(sa.Integer, "integer")
