"""The grant store: users, grants, audit events and the sign-in replay cache.

Every method is one short transaction; none is ever held open across a call to the provider.
Refreshes are coordinated with a lease on the grant row (taken by compare-and-swap, expiring by
itself if its holder dies) and written with a compare-and-swap on the grant's ``version``,
which every change to tokens or status increments. Tokens are encrypted here, with the grant's
identity as associated data, so callers only ever see plaintext dataclasses and the database
only ever sees envelopes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.crypto import KeyRing
from grantkeeper.store import migrate as migrations
from grantkeeper.store import rotation
from grantkeeper.store.codec import PROFILE_FIELDS, GrantCodec
from grantkeeper.store.engine import create_engine, display_url, normalize_url, transaction
from grantkeeper.store.fingerprints import normalize_sha512x2, refresh_token_prefix_sha256
from grantkeeper.store.records import (
    AuditEvent,
    EncryptedRow,
    Grant,
    GrantRef,
    GrantStatus,
    SignInRecord,
    User,
    UserProfile,
    merge_scopes,
    scopes_from_column,
    scopes_to_column,
)
from grantkeeper.store.tables import audit_events, grants, signin_replays, users

if TYPE_CHECKING:
    from grantkeeper.settings import Settings

_ERASED_TOKENS: dict[str, Any] = {
    "refresh_token": None,
    "refresh_token_kid": None,
    "refresh_token_sha512x2": None,
    "refresh_token_prefix_sha256": None,
    "access_token": None,
    "access_token_kid": None,
    "access_token_expires_at": None,
}
_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


class GrantStore:
    """Async store on SQLite or PostgreSQL. Open with :meth:`open`; use as ``async with``."""

    def __init__(
        self, engine: AsyncEngine, keyring: KeyRing, clock: Clock, *, schema: str | None = None
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self._codec = GrantCodec(keyring)
        self._clock = clock
        self._schema = schema

    @classmethod
    async def open(
        cls,
        url: str,
        keyring: KeyRing,
        clock: Clock = SYSTEM_CLOCK,
        *,
        schema: str | None = None,
        migrate: bool = False,
    ) -> GrantStore:
        """Connect (and check the connection) to ``url``.

        Args:
            url: ``sqlite:///path`` or ``postgresql://…``; the async driver is chosen here.
            keyring: encrypts tokens on write, decrypts on read.
            clock: the source of every timestamp and expiry.
            schema: PostgreSQL only: keep every table in this schema (created by migrate).
            migrate: run :meth:`migrate` before returning.

        Raises:
            ConfigurationError: the URL or schema name is not usable.
            StoreUnavailable: the database cannot be reached.
        """
        store = cls(create_engine(normalize_url(url), schema=schema), keyring, clock, schema=schema)
        try:
            await store.ping()
            if migrate:
                await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def open_from_settings(
        cls, settings: Settings, clock: Clock = SYSTEM_CLOCK, *, migrate: bool = True
    ) -> GrantStore:
        """The store the settings describe: ``DATABASE_URL`` (default SQLite in the data
        directory), ``DATABASE_SCHEMA``, and the key ring (:meth:`KeyRing.load_or_create`)."""
        return await cls.open(
            settings.effective_database_url,
            KeyRing.load_or_create(settings),
            clock,
            schema=settings.database_schema,
            migrate=migrate,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def url(self) -> str:
        """The database URL without its password, for messages."""
        return display_url(self._engine.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers (for ``/readyz``)."""
        async with self._read() as conn:
            await conn.execute(sa.select(1))

    async def migrate(self) -> None:
        """Apply the packaged Alembic migrations up to head (safe to run concurrently)."""
        await migrations.upgrade(self._engine, schema=self._schema)

    async def current_revision(self) -> str | None:
        """The migration revision of the database; ``None`` if it was never migrated."""
        return await migrations.current_revision(self._engine)

    # -- sign-in ---------------------------------------------------------------------------

    async def record_sign_in(
        self,
        profile: UserProfile,
        client_id: str,
        granted_scopes: set[str] | frozenset[str],
        refresh_token: str | None,
        access_token: str,
        access_token_expires_at: datetime,
        refresh_token_expires_at: datetime | None = None,
        *,
        audit_detail: Mapping[str, Any] | None = None,
    ) -> SignInRecord:
        """Store a completed sign-in in one transaction.

        Upserts the user by ``sub`` and the grant by ``(sub, client_id)``; the grant's scopes
        become the union with ``granted_scopes``; a ``None`` refresh token keeps the stored
        one, a new one replaces it and reactivates a grant that was not active; the version
        is bumped and a ``sign_in`` audit event written. Concurrent sign-ins of one user
        serialize on the grant row, so the result is one consistent grant.
        """
        now = self._clock.now()
        sub = profile.sub
        async with self._write() as conn:
            new_user = await self._upsert_user(conn, profile, now)
            await conn.execute(
                self._insert(grants)
                .values(
                    sub=sub,
                    client_id=client_id,
                    scopes="",
                    version=0,
                    status=GrantStatus.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["sub", "client_id"])
            )
            row = (await conn.execute(self._grant_query(sub, client_id).with_for_update())).one()
            stored_scopes = scopes_from_column(row.scopes)
            scopes = merge_scopes(stored_scopes, granted_scopes)
            values: dict[str, Any] = {
                "scopes": scopes_to_column(scopes),
                "version": row.version + 1,
                "updated_at": now,
                **self._codec.access_columns(sub, client_id, access_token, access_token_expires_at),
            }
            reactivated = False
            if refresh_token is not None:
                values.update(self._codec.refresh_columns(sub, client_id, refresh_token))
                values["refresh_token_expires_at"] = refresh_token_expires_at
                if row.status != GrantStatus.ACTIVE:
                    reactivated = True
                    values.update(
                        status=GrantStatus.ACTIVE.value, status_reason=None, status_changed_at=now
                    )
            await conn.execute(grants.update().where(grants.c.id == row.id).values(**values))
            grant = self._codec.grant((await conn.execute(self._grant_query(sub, client_id))).one())
            added = scopes - stored_scopes
            await self._audit(
                conn,
                now,
                "sign_in",
                sub=sub,
                client_id=client_id,
                outcome="ok",
                detail={
                    "added_scopes": sorted(added),
                    "new_user": new_user,
                    "refresh_token_stored": refresh_token is not None,
                    "offline": grant.offline,
                    "reactivated": reactivated,
                    **(audit_detail or {}),
                },
            )
            user = self._codec.user(
                (await conn.execute(users.select().where(users.c.sub == sub))).one()
            )
        return SignInRecord(
            user=user,
            grant=grant,
            added_scopes=frozenset(added),
            new_user=new_user,
            refresh_token_stored=refresh_token is not None,
            reactivated=reactivated,
        )

    async def _upsert_user(
        self, conn: AsyncConnection, profile: UserProfile, now: datetime
    ) -> bool:
        claims = {name: getattr(profile, name) for name in PROFILE_FIELDS}
        inserted = await conn.execute(
            self._insert(users)
            .values(sub=profile.sub, created_at=now, updated_at=now, **claims)
            .on_conflict_do_nothing(index_elements=["sub"])
            # RETURNING, not rowcount: psycopg reports rowcount -1 for this statement.
            .returning(sa.literal(1))
        )
        if inserted.first() is not None:
            return True
        # A claim absent from this ID token (narrower scopes) keeps the stored value.
        present = {name: value for name, value in claims.items() if value is not None}
        await conn.execute(
            users.update().where(users.c.sub == profile.sub).values(updated_at=now, **present)
        )
        return False

    # -- reading ---------------------------------------------------------------------------

    async def get_user(self, sub: str) -> User | None:
        async with self._read() as conn:
            row = (await conn.execute(users.select().where(users.c.sub == sub))).one_or_none()
        return None if row is None else self._codec.user(row)

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Users ordered by ``sub``."""
        query = users.select().order_by(users.c.sub).offset(offset).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [self._codec.user(row) for row in rows]

    async def get_grant(self, sub: str, client_id: str | None = None) -> Grant | None:
        """The user's grant for ``client_id``; without one, the most recently updated grant.

        Raises:
            TokenDecryptionError: a stored token cannot be decrypted with the key ring.
        """
        async with self._read() as conn:
            row = (await conn.execute(self._grant_query(sub, client_id))).first()
        return None if row is None else self._codec.grant(row)

    async def list_grants(
        self, *, sub: str | None = None, status: str | None = None
    ) -> list[Grant]:
        """Grants (decrypted) ordered by id, optionally of one user or in one status."""
        query = grants.select().order_by(grants.c.id)
        if sub is not None:
            query = query.where(grants.c.sub == sub)
        if status is not None:
            query = query.where(grants.c.status == status)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [self._codec.grant(row) for row in rows]

    async def count_by_status(self) -> dict[str, int]:
        """Number of grants per status (for metrics and the sweep summary)."""
        query = sa.select(grants.c.status, sa.func.count()).group_by(grants.c.status)
        async with self._read() as conn:
            return {status: count for status, count in (await conn.execute(query)).all()}

    async def find_grants_by_refresh_token(
        self, *, sha512x2: str | None = None, prefix: str | None = None
    ) -> list[GrantRef]:
        """Grants whose refresh token matches a RISC ``token-revoked`` identifier.

        ``sha512x2`` is the event's ``hash_base64_sha512_sha512`` value, ``prefix`` the first
        16 characters of the token (``prefix`` algorithm). No token is decrypted.
        """
        if (sha512x2 is None) == (prefix is None):
            raise ValueError("give exactly one of sha512x2 and prefix")
        if sha512x2 is not None:
            condition = grants.c.refresh_token_sha512x2 == normalize_sha512x2(sha512x2)
        else:
            assert prefix is not None
            condition = grants.c.refresh_token_prefix_sha256 == refresh_token_prefix_sha256(prefix)
        query = sa.select(grants.c.sub, grants.c.client_id, grants.c.status).where(condition)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [GrantRef(sub=r.sub, client_id=r.client_id, status=r.status) for r in rows]

    # -- leases and compare-and-swap -------------------------------------------------------

    async def try_acquire_lease(
        self, sub: str, client_id: str, owner: str, ttl: timedelta
    ) -> Grant | None:
        """Take the grant's refresh lease unless another owner holds a live one.

        Compare-and-swap: succeeds if the lease is free, expired, or already ``owner``'s (the
        lease is then extended). Returns the grant as re-read under the lease, or ``None`` if
        the lease is held by someone else or the grant does not exist. The lease does not
        change ``version``.
        """
        now = self._clock.now()
        free = sa.or_(
            grants.c.lease_owner.is_(None),
            grants.c.lease_expires_at.is_(None),
            grants.c.lease_expires_at <= now,
            grants.c.lease_owner == owner,
        )
        async with self._write() as conn:
            taken = await conn.execute(
                grants.update()
                .where(grants.c.sub == sub, grants.c.client_id == client_id, free)
                .values(lease_owner=owner, lease_expires_at=now + ttl)
            )
            if taken.rowcount != 1:
                return None
            row = (await conn.execute(self._grant_query(sub, client_id))).one()
        return self._codec.grant(row)

    async def release_lease(self, sub: str, client_id: str, owner: str) -> bool:
        """Give the lease back; ``False`` if ``owner`` no longer held it."""
        async with self._write() as conn:
            result = await conn.execute(
                grants.update()
                .where(
                    grants.c.sub == sub,
                    grants.c.client_id == client_id,
                    grants.c.lease_owner == owner,
                )
                .values(**_NO_LEASE)
            )
        return result.rowcount == 1

    async def save_refreshed(
        self,
        sub: str,
        client_id: str,
        expected_version: int,
        access_token: str,
        expires_at: datetime,
        refresh_token: str | None = None,
        owner: str | None = None,
        *,
        refresh_token_expires_at: datetime | None = None,
    ) -> bool:
        """Write a refresh's result if the grant is still at ``expected_version``.

        One statement writes the new access token, a rotated refresh token (if the provider
        sent one) and ``last_refreshed_at``, bumps the version and clears ``owner``'s lease.
        Returns ``False`` and changes nothing (the lease included) when the version moved on:
        someone else refreshed, signed in or revoked meanwhile; re-read the grant.
        """
        now = self._clock.now()
        values: dict[str, Any] = {
            **self._codec.access_columns(sub, client_id, access_token, expires_at),
            "version": grants.c.version + 1,
            "last_refreshed_at": now,
            "updated_at": now,
        }
        if refresh_token is not None:
            values.update(self._codec.refresh_columns(sub, client_id, refresh_token))
        if refresh_token_expires_at is not None:
            values["refresh_token_expires_at"] = refresh_token_expires_at
        if owner is not None:
            mine = grants.c.lease_owner == owner
            values["lease_owner"] = sa.case((mine, None), else_=grants.c.lease_owner)
            values["lease_expires_at"] = sa.case((mine, None), else_=grants.c.lease_expires_at)
        async with self._write() as conn:
            result = await conn.execute(
                grants.update()
                .where(
                    grants.c.sub == sub,
                    grants.c.client_id == client_id,
                    grants.c.version == expected_version,
                )
                .values(**values)
            )
        return result.rowcount == 1

    # -- status changes --------------------------------------------------------------------

    async def set_status(
        self,
        sub: str,
        client_id: str | None,
        status: GrantStatus | str,
        reason: str | None,
        *,
        expected_version: int | None = None,
        erase_access_token: bool = True,
    ) -> int:
        """Move grants to ``status`` (all of the user's when ``client_id`` is ``None``).

        Bumps the version, clears any lease and, unless told otherwise, erases the access
        token so a grant that is not active can never hand one out. With
        ``expected_version`` it is a compare-and-swap. Returns the number of grants changed.
        """
        now = self._clock.now()
        values: dict[str, Any] = {
            "status": str(status),
            "status_reason": reason,
            "status_changed_at": now,
            "version": grants.c.version + 1,
            "updated_at": now,
            **_NO_LEASE,
        }
        if erase_access_token:
            values.update(access_token=None, access_token_kid=None, access_token_expires_at=None)
        query = grants.update().where(*self._grant_filter(sub, client_id)).values(**values)
        if expected_version is not None:
            query = query.where(grants.c.version == expected_version)
        async with self._write() as conn:
            result = await conn.execute(query)
        return result.rowcount

    async def mark_revoked(
        self,
        sub: str,
        client_id: str | None,
        reason: str,
        expected_version: int | None = None,
    ) -> int:
        """The provider refused the grant (``invalid_grant``, RISC): status ``revoked``.

        The refresh token stays (encrypted) so a later RISC event can still match its hash;
        it is never used again unless a sign-in replaces it.
        """
        return await self.set_status(
            sub, client_id, GrantStatus.REVOKED, reason, expected_version=expected_version
        )

    async def mark_pending_revocation(
        self, sub: str, client_id: str | None, reason: str = "disconnect"
    ) -> int:
        """Disconnected, but the provider could not be told yet: keep the refresh token (the
        sweep needs it to revoke) and erase the access token."""
        return await self.set_status(sub, client_id, GrantStatus.PENDING_REVOCATION, reason)

    async def erase_tokens(
        self,
        sub: str,
        client_id: str | None = None,
        *,
        status: GrantStatus | str | None = None,
        reason: str | None = None,
    ) -> int:
        """Erase every stored token (and its fingerprints) of the user's grants, optionally
        setting a status. Bumps the version and clears leases. Returns grants changed."""
        now = self._clock.now()
        values: dict[str, Any] = {
            **_ERASED_TOKENS,
            **_NO_LEASE,
            "version": grants.c.version + 1,
            "updated_at": now,
        }
        if status is not None:
            values.update(status=str(status), status_reason=reason, status_changed_at=now)
        async with self._write() as conn:
            result = await conn.execute(
                grants.update().where(*self._grant_filter(sub, client_id)).values(**values)
            )
        return result.rowcount

    async def forget_user(self, sub: str) -> bool:
        """Erase the user's profile, grants and cached sign-in responses (the audit log keeps
        only the ``sub``). Returns whether the user existed."""
        async with self._write() as conn:
            await conn.execute(signin_replays.delete().where(signin_replays.c.sub == sub))
            await conn.execute(grants.delete().where(grants.c.sub == sub))
            result = await conn.execute(users.delete().where(users.c.sub == sub))
        return result.rowcount == 1

    async def touch_last_used(self, sub: str, client_id: str, at: datetime | None = None) -> None:
        """Record that the grant's access token was handed out (does not bump the version)."""
        async with self._write() as conn:
            await conn.execute(
                grants.update()
                .where(grants.c.sub == sub, grants.c.client_id == client_id)
                .values(last_used_at=at or self._clock.now())
            )

    # -- sign-in replay cache --------------------------------------------------------------

    async def remember_signin_response(
        self,
        code_hash: str,
        response_json: str,
        ttl: timedelta = timedelta(minutes=10),
        *,
        sub: str | None = None,
    ) -> None:
        """Cache the answer to a sign-in under the code's hash (see ``signin_code_hash``) so a
        retried POST gets it again without a second exchange. Also purges expired entries."""
        now = self._clock.now()
        statement = self._insert(signin_replays).values(
            code_hash=code_hash,
            sub=sub,
            response_json=response_json,
            created_at=now,
            expires_at=now + ttl,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["code_hash"],
            set_={
                "sub": statement.excluded.sub,
                "response_json": statement.excluded.response_json,
                "created_at": statement.excluded.created_at,
                "expires_at": statement.excluded.expires_at,
            },
        )
        async with self._write() as conn:
            await conn.execute(signin_replays.delete().where(signin_replays.c.expires_at <= now))
            await conn.execute(statement)

    async def recall_signin_response(self, code_hash: str) -> str | None:
        """The cached answer for this code hash, unless it has expired."""
        query = sa.select(signin_replays.c.response_json).where(
            signin_replays.c.code_hash == code_hash,
            signin_replays.c.expires_at > self._clock.now(),
        )
        async with self._read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def purge_expired_signin_responses(self) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                signin_replays.delete().where(signin_replays.c.expires_at <= self._clock.now())
            )
        return result.rowcount

    # -- audit -----------------------------------------------------------------------------

    async def append_audit(
        self,
        kind: str,
        *,
        sub: str | None = None,
        client_id: str | None = None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit event. ``detail`` must be JSON-serializable and never hold a token."""
        async with self._write() as conn:
            await self._audit(
                conn,
                self._clock.now(),
                kind,
                sub=sub,
                client_id=client_id,
                outcome=outcome,
                detail=detail or {},
            )

    async def list_audit(
        self, sub: str | None = None, *, kind: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """Audit events, newest first."""
        query = audit_events.select().order_by(audit_events.c.id.desc()).limit(limit)
        if sub is not None:
            query = query.where(audit_events.c.sub == sub)
        if kind is not None:
            query = query.where(audit_events.c.kind == kind)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEvent(
                id=r.id,
                at=r.at,
                kind=r.kind,
                sub=r.sub,
                client_id=r.client_id,
                outcome=r.outcome,
                detail=r.detail,
            )
            for r in rows
        ]

    # -- key rotation (see rotation.py) ---------------------------------------------------

    async def count_by_key_id(self) -> dict[str, int]:
        """Number of stored encrypted values per key id (refresh and access tokens)."""
        async with self._read() as conn:
            return await rotation.count_by_key_id(conn)

    async def iter_encrypted_rows(
        self, batch_size: int = 500, *, only_stale: bool = True, after_id: int = 0
    ) -> AsyncIterator[list[EncryptedRow]]:
        """Batches of grant rows holding ciphertext, in id order, each its own short read.
        ``only_stale`` skips rows entirely under the primary key, so a rotation resumes."""
        primary = self._keyring.primary_kid
        while True:
            query = rotation.encrypted_rows_query(
                primary, after_id=after_id, batch_size=batch_size, only_stale=only_stale
            )
            async with self._read() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            yield [rotation.encrypted_row(row) for row in rows]
            after_id = rows[-1].id

    async def reencrypt_batch(self, rows: Sequence[EncryptedRow]) -> int:
        """Re-encrypt the rows' tokens under the primary key, in one transaction, without
        touching versions. Returns the number of values rewritten."""
        if not rows:
            return 0
        async with self._write() as conn:
            return await rotation.reencrypt_rows(conn, self._codec, [r.grant_id for r in rows])

    # -- for features that keep their own tables in the store's database ------------------

    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        """One short transaction on the store's engine (its pool, schema and SQLite locking),
        with connection failures mapped to :class:`StoreUnavailable`."""
        return transaction(self._engine, write=write)

    async def insert_if_absent(
        self, table: sa.Table, values: Mapping[str, Any], conflict_columns: Sequence[str]
    ) -> bool:
        """``INSERT … ON CONFLICT DO NOTHING``; ``True`` if this call inserted the row.

        Use this rather than ``rowcount``, which psycopg reports as -1 for such an insert.
        """
        statement = (
            self._insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(conflict_columns))
            .returning(sa.literal(1))
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    # -- helpers ---------------------------------------------------------------------------

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, write=False)

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, write=True)

    def _insert(self, table: sa.Table) -> Any:
        # Both dialects spell upserts as INSERT … ON CONFLICT; the Insert classes differ.
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _grant_filter(sub: str, client_id: str | None) -> list[sa.ColumnElement[bool]]:
        conditions = [grants.c.sub == sub]
        if client_id is not None:
            conditions.append(grants.c.client_id == client_id)
        return conditions

    def _grant_query(self, sub: str, client_id: str | None) -> sa.Select[Any]:
        return (
            grants.select()
            .where(*self._grant_filter(sub, client_id))
            .order_by(grants.c.updated_at.desc(), grants.c.id.desc())
            .limit(1)
        )

    @staticmethod
    async def _audit(
        conn: AsyncConnection,
        at: datetime,
        kind: str,
        *,
        sub: str | None,
        client_id: str | None,
        outcome: str,
        detail: Mapping[str, Any],
    ) -> None:
        await conn.execute(
            audit_events.insert().values(
                at=at,
                kind=kind,
                sub=sub,
                client_id=client_id,
                outcome=outcome,
                detail=dict(detail),
            )
        )
