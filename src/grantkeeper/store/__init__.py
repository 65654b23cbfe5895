"""The encrypted grant store on SQLite or PostgreSQL (SQLAlchemy 2 async + Alembic).

::

    keyring = KeyRing.load_or_create(settings)
    async with await GrantStore.open(settings.effective_database_url, keyring, migrate=True) as s:
        record = await s.record_sign_in(profile, client_id, scopes, refresh, access, expires_at)
"""

from grantkeeper.store.fingerprints import (
    idempotency_key_hash,
    refresh_token_prefix_sha256,
    refresh_token_sha512x2,
    signin_code_hash,
)
from grantkeeper.store.grant_store import GrantStore
from grantkeeper.store.records import (
    AuditEvent,
    EncryptedRow,
    Grant,
    GrantRef,
    GrantStatus,
    SignInRecord,
    User,
    UserProfile,
)
from grantkeeper.store.signin_replay_cache import ReplayEntry
from grantkeeper.store.webhook_outbox import OutboxEntry, OutboxMessage, OutboxState

__all__ = [
    "AuditEvent",
    "EncryptedRow",
    "Grant",
    "GrantRef",
    "GrantStatus",
    "GrantStore",
    "OutboxEntry",
    "OutboxMessage",
    "OutboxState",
    "ReplayEntry",
    "SignInRecord",
    "User",
    "UserProfile",
    "idempotency_key_hash",
    "refresh_token_prefix_sha256",
    "refresh_token_sha512x2",
    "signin_code_hash",
]
