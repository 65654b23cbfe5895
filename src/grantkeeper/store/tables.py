"""The schema, as SQLAlchemy Core tables. Migrations in ``migrations/versions`` create it.

Every table is named ``gk_…`` (and Alembic's version table is ``gk_alembic_version``), so an
app's own database can hold grantkeeper's tables beside its ``users`` and its own Alembic history.

Token columns hold only :mod:`grantkeeper.crypto` envelopes; ``*_kid`` columns repeat the
envelope's key id so ``keys status`` can count rows per key with one ``GROUP BY``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC in SQLAlchemy's fixed-width text form, which also compares correctly in SQL.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("grantkeeper stores only timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: An ever-growing id: BIGINT on PostgreSQL (the audit log passes 2**31 records on a busy
#: keeper); on SQLite an INTEGER PRIMARY KEY, which is the 64-bit rowid (a BIGINT column would
#: not be).
SEQUENCE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = sa.Table(
    "gk_users",
    metadata,
    sa.Column("sub", sa.String(255), primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("email_verified", sa.Boolean),
    sa.Column("name", sa.String(512)),
    sa.Column("picture", sa.Text),
    sa.Column("locale", sa.String(64)),
    sa.Column("given_name", sa.String(255)),
    sa.Column("family_name", sa.String(255)),
    sa.Column("hd", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

grants = sa.Table(
    "gk_grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "sub", sa.String(255), sa.ForeignKey("gk_users.sub", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False, server_default=""),
    sa.Column("refresh_token", sa.Text),
    sa.Column("refresh_token_kid", sa.String(32)),
    sa.Column("refresh_token_sha512x2", sa.String(88), index=True),
    sa.Column("refresh_token_prefix_sha256", sa.String(64), index=True),
    sa.Column("refresh_token_expires_at", UTCDateTime),
    sa.Column("access_token", sa.Text),
    sa.Column("access_token_kid", sa.String(32)),
    sa.Column("access_token_expires_at", UTCDateTime),
    sa.Column("status", sa.String(32), nullable=False, server_default="active"),
    sa.Column("status_reason", sa.String(255)),
    sa.Column("status_changed_at", UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("last_refreshed_at", UTCDateTime),
    sa.UniqueConstraint("sub", "client_id"),
)

audit_events = sa.Table(
    "gk_audit_events",
    metadata,
    sa.Column("id", SEQUENCE_ID, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("sub", sa.String(255)),
    sa.Column("client_id", sa.String(255)),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_gk_audit_events_sub_at", "sub", "at"),
)

signin_replays = sa.Table(
    "gk_signin_replays",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("sub", sa.String(255), index=True),
    sa.Column("response_json", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Cross-Account Protection events already claimed, by (issuer, jti): Google redelivers events.
risc_events_seen = sa.Table(
    "gk_risc_events_seen",
    metadata,
    sa.Column("jti", sa.String(255), nullable=False),
    sa.Column("issuer", sa.String(255), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.PrimaryKeyConstraint("issuer", "jti"),
)

# A grant whose refresh failed transiently waits before the provider is asked again, and every
# instance sees the same wait (a cooldown growing with consecutive failures; a success drops it).
grant_cooldowns = sa.Table(
    "gk_grant_cooldowns",
    metadata,
    sa.Column("sub", sa.String(255), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("sub", "client_id"),
)

# Webhook notifications, written in the transaction of the grant change that causes them and
# delivered from here (at least once, across restarts and instances). ``id`` is the
# ``webhook-id`` of every attempt; ``seq`` orders and pages the listing. A deliverer claims a
# row with a lease (``lease_owner`` until ``lease_expires_at``): a row whose claimer died is
# claimed again once the lease lapses. ``body`` is the JSON payload; it never holds a token.
webhook_outbox = sa.Table(
    "gk_webhook_outbox",
    metadata,
    sa.Column("seq", SEQUENCE_ID, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.String(200)),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Index("ix_gk_webhook_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)
