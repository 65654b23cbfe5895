"""Tables of our own: ``users`` -> ``gk_users`` and so on, so an app's database can hold them.

Databases created by this version have the ``gk_`` names from revision 0001 on (see
:mod:`grantkeeper.store.migrations.names`); for them this revision does nothing. Databases
created before have the bare names at 0003 and are renamed here.

An app that adds grantkeeper to its own database almost always has a ``users`` table already;
with the ``gk_`` prefix the two never meet. Indexes and constraints are renamed too (in
PostgreSQL and SQLite index names share one namespace with tables, so an app's ``ix_users_…``
could collide as well). PostgreSQL renames in place; SQLite renames the tables (it rewrites the
foreign key that points at ``users``) and recreates the indexes and the named unique constraint.
The names are written out: a migration describes one fixed schema, not today's models.

Alembic's version table moves from ``alembic_version`` to ``gk_alembic_version`` before this
revision runs: see :func:`grantkeeper.store.migrate.adopt_legacy_version_table`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("users", "grants", "audit_events", "signin_replays", "risc_events_seen")

#: (table after the rename, old index name, new index name, columns)
INDEXES = (
    ("grants", "ix_grants_refresh_token_sha512x2", "ix_gk_grants_refresh_token_sha512x2",
     ["refresh_token_sha512x2"]),
    ("grants", "ix_grants_refresh_token_prefix_sha256", "ix_gk_grants_refresh_token_prefix_sha256",
     ["refresh_token_prefix_sha256"]),
    ("audit_events", "ix_audit_events_sub_at", "ix_gk_audit_events_sub_at", ["sub", "at"]),
    ("signin_replays", "ix_signin_replays_sub", "ix_gk_signin_replays_sub", ["sub"]),
    ("signin_replays", "ix_signin_replays_expires_at", "ix_gk_signin_replays_expires_at",
     ["expires_at"]),
)  # fmt: skip

#: PostgreSQL constraints (a primary key or unique constraint renames its index with it).
CONSTRAINTS = (
    ("users", "pk_users", "pk_gk_users"),
    ("grants", "pk_grants", "pk_gk_grants"),
    ("grants", "fk_grants_sub_users", "fk_gk_grants_sub_gk_users"),
    ("grants", "uq_grants_sub_client_id", "uq_gk_grants_sub_client_id"),
    ("audit_events", "pk_audit_events", "pk_gk_audit_events"),
    ("signin_replays", "pk_signin_replays", "pk_gk_signin_replays"),
    ("risc_events_seen", "pk_risc_events_seen", "pk_gk_risc_events_seen"),
)


def upgrade() -> None:
    # A database this version created has gk_grants since 0001 (an app's own "grants" table,
    # if any, is not ours to rename).
    if "gk_grants" in sa.inspect(op.get_bind()).get_table_names():
        return
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        op.rename_table(table, "gk_" + table)
    for table, old, new, columns in INDEXES:
        if postgres:
            op.execute(f'ALTER INDEX "{old}" RENAME TO "{new}"')
        else:
            op.drop_index(old, table_name="gk_" + table)
            op.create_index(new, "gk_" + table, columns)
    if postgres:
        for table, old, new in CONSTRAINTS:
            op.execute(f'ALTER TABLE "gk_{table}" RENAME CONSTRAINT "{old}" TO "{new}"')
        for sequence in ("grants_id_seq", "audit_events_id_seq"):
            op.execute(f'ALTER SEQUENCE IF EXISTS "{sequence}" RENAME TO "gk_{sequence}"')
        return
    # SQLite keeps the unique constraint's name in the table's SQL: rebuild the table with the
    # new name (batch mode copies the rows into a new table).
    with op.batch_alter_table("gk_grants") as batch:
        batch.drop_constraint("uq_grants_sub_client_id", type_="unique")
        batch.create_unique_constraint("uq_gk_grants_sub_client_id", ["sub", "client_id"])


def downgrade() -> None:
    # Back to 0003 as this version builds 0003: with the gk_ names, so nothing to undo.
    pass
