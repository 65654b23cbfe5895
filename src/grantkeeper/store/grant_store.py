"""The grant store: users, grants, audit events and the sign-in replay cache.

Every method is one short transaction; none is ever held open across a call to the provider.
Refreshes are coordinated with a lease on the grant row (taken by compare-and-swap, expiring by
itself if its holder dies) and written with a compare-and-swap on the grant's ``version``,
which every change to tokens or status increments. Tokens are encrypted here, with the grant's
identity as associated data, so callers only ever see plaintext dataclasses and the database
only ever sees envelopes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.crypto import KeyRing
from grantkeeper.errors import ConfigurationError
from grantkeeper.store import migrate as migrations
from grantkeeper.store.audit_log import AuditLog
from grantkeeper.store.codec import PROFILE_FIELDS, fit_profile
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.cooldowns import GrantCooldowns
from grantkeeper.store.engine import create_engine, display_url, normalize_url
from grantkeeper.store.grant_reads import GrantReads
from grantkeeper.store.grant_status import GrantStatusChanges
from grantkeeper.store.hand_outs import HandOutLog
from grantkeeper.store.leases import GrantLeases
from grantkeeper.store.records import (
    GrantStatus,
    SignInRecord,
    UserProfile,
    merge_scopes,
    scopes_from_column,
    scopes_to_column,
)
from grantkeeper.store.rotation_batches import KeyRotationBatches
from grantkeeper.store.security_event_claims import SecurityEventClaims
from grantkeeper.store.signin_replay_cache import ReplayEntry, SignInReplayCache
from grantkeeper.store.store_core import param, params
from grantkeeper.store.tables import audit_events, grants, users
from grantkeeper.store.webhook_outbox import Outbox, WebhookOutbox, enqueue, outbox_for

if TYPE_CHECKING:
    from grantkeeper.settings import Settings

log = logging.getLogger("grantkeeper.store")


class GrantStore(
    GrantCooldowns,
    GrantReads,
    GrantLeases,
    GrantStatusChanges,
    HandOutLog,
    SignInReplayCache,
    AuditLog,
    KeyRotationBatches,
    SecurityEventClaims,
    WebhookOutbox,
):
    """Async store on SQLite or PostgreSQL. Open with :meth:`open`; use as ``async with``.

    Its methods come in parts, one module each: reading (:mod:`.grant_reads`), leases and
    compare-and-swap (:mod:`.leases`), status changes (:mod:`.grant_status`), hand-outs of
    stored tokens (:mod:`.hand_outs`), the sign-in replay
    cache (:mod:`.signin_replay_cache`), the audit log (:mod:`.audit_log`), key rotation
    (:mod:`.rotation_batches`), security-event claims (:mod:`.security_event_claims`) and the
    webhook outbox (:mod:`.webhook_outbox`), on a
    shared core (:mod:`.store_core`). Opening and sign-in are here. The store owns every table
    and every SQL statement: nothing else in grantkeeper writes SQL.
    """

    @classmethod
    async def open(
        cls,
        url: str,
        keyring: KeyRing,
        clock: Clock = SYSTEM_CLOCK,
        *,
        schema: str | None = None,
        migrate: bool = False,
        create_schema: bool = True,
    ) -> GrantStore:
        """Connect (and check the connection) to ``url``.

        Args:
            url: ``sqlite:///path`` or ``postgresql://…``; the async driver is chosen here.
            keyring: encrypts tokens on write, decrypts on read.
            clock: the source of every timestamp and expiry.
            schema: PostgreSQL only: keep every table in this schema (created by migrate).
            migrate: run :meth:`migrate` before returning.
            create_schema: with ``migrate``, create a missing ``schema`` (else refuse it).

        Raises:
            ConfigurationError: the URL or schema name is not usable.
            StoreUnavailable: the database cannot be reached.
        """
        store = cls(create_engine(normalize_url(url), schema=schema), keyring, clock, schema=schema)
        try:
            await store.ping()
            if migrate:
                await store.migrate(create_schema=create_schema)
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def open_from_settings(
        cls, settings: Settings, clock: Clock = SYSTEM_CLOCK, *, migrate: bool = True
    ) -> GrantStore:
        """The store the settings describe: ``DATABASE_URL`` (default SQLite in the data
        directory), ``DATABASE_SCHEMA``, and the key ring (:meth:`KeyRing.load_or_create`).

        Migrating here (a keeper's start) never creates the PostgreSQL schema: a misspelt
        ``DATABASE_SCHEMA`` must fail loudly, not start an empty store (``db upgrade`` creates
        it)."""
        store = await cls.open(
            settings.effective_database_url,
            KeyRing.load_or_create(settings),
            clock,
            schema=settings.database_schema,
            migrate=migrate and settings.migrate_on_start,
            create_schema=False,
        )
        if migrate and not settings.migrate_on_start:
            try:
                await store.require_current_schema()
            except BaseException:
                await store.close()
                raise
        return store

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
        if self._inline is not None:
            self._inline.close()
        if self._direct is not None:
            await self._direct.close()
        if self._direct_writes is not None:
            await self._direct_writes.close()
        await self._engine.dispose()

    @property
    def url(self) -> str:
        """The database URL without its password, for messages."""
        return display_url(self._engine.url)

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers (for ``/readyz``)."""
        async with self._read() as conn:
            await conn.execute(sa.select(1))

    async def migrate(self, *, create_schema: bool = True) -> None:
        """Apply the packaged Alembic migrations up to head (safe to run concurrently)."""
        await migrations.upgrade(self._engine, schema=self._schema, create_schema=create_schema)

    async def require_current_schema(self) -> None:
        """Refuse to work on a schema older (or newer) than this version's migrations: with
        ``GRANTKEEPER_MIGRATE_ON_START=false`` only ``grantkeeper db upgrade`` migrates."""
        found, head = await self.current_revision(), migrations.head_revision()
        if found != head:
            raise ConfigurationError(
                f"The database at {self.url} is at revision {found or 'none (empty)'}; this "
                f"grantkeeper needs {head}. Run `grantkeeper db upgrade` "
                "(GRANTKEEPER_MIGRATE_ON_START is off, so the keeper does not migrate by itself)."
            )

    async def current_revision(self) -> str | None:
        """The migration revision of the database; ``None`` if it was never migrated."""
        return await migrations.current_revision(self._engine, self._schema)

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
        replay: ReplayEntry | None = None,
        outbox: Outbox[SignInRecord] | None = None,
    ) -> SignInRecord:
        """Store a completed sign-in in one transaction.

        Upserts the user by ``sub`` and the grant by ``(sub, client_id)``; the grant's scopes
        become the union with ``granted_scopes``; a ``None`` refresh token keeps the stored
        one, a new one replaces it and reactivates a grant that was not active; the version
        is bumped and a ``sign_in`` audit event written. Concurrent sign-ins of one user
        serialize on the grant row, so the result is one consistent grant. With ``replay``, the
        answer to a retry of the code is written in the same transaction, and so are the
        notifications ``outbox`` makes of the record (e.g. a reactivated grant's).
        """
        now = self._clock.now()
        profile, shortened = fit_profile(profile)
        if shortened:
            log.warning(
                "sign-in sub=%s: claims longer than their column were shortened or dropped: %s",
                profile.sub,
                ", ".join(shortened),
            )
        sub = profile.sub
        async with self._write(direct=True) as conn:
            new_user, user_row, claimed = await self._claim_user_and_grant(
                conn, profile, client_id, now
            )
            stored_scopes = scopes_from_column(claimed["scopes"])
            scopes = merge_scopes(stored_scopes, granted_scopes)
            values: dict[str, Any] = {
                "scopes": scopes_to_column(scopes),
                "version": claimed["version"] + 1,
                "updated_at": now,
                **self._codec.access_columns(sub, client_id, access_token, access_token_expires_at),
            }
            reactivated = False
            if refresh_token is not None:
                values.update(self._codec.refresh_columns(sub, client_id, refresh_token))
                values["refresh_token_expires_at"] = refresh_token_expires_at
                if claimed["status"] != GrantStatus.ACTIVE:
                    reactivated = True
                    values.update(
                        status=GrantStatus.ACTIVE.value, status_reason=None, status_changed_at=now
                    )
            columns = tuple(values)
            # PostgreSQL with an answer to keep: the grant as it will be written (the locked
            # row with these values), so that its update, the audit event and the answer to a
            # retry go in one statement. Elsewhere RETURNING gives the row as written.
            one_statement = self.dialect == "postgresql" and replay is not None
            if one_statement:
                grant = self._codec.grant_from({**claimed, **_as_stored(values)})
            else:
                written = await conn.execute(
                    self._prebuilt(("grant_signed_in", columns), lambda: _grant_signed_in(columns)),
                    {**params(values), "w_id": claimed["id"]},
                )
                grant = self._codec.grant(written.one())
            added = scopes - stored_scopes
            record = SignInRecord(
                user=self._codec.user(user_row),
                grant=grant,
                added_scopes=frozenset(added),
                new_user=new_user,
                refresh_token_stored=refresh_token is not None,
                reactivated=reactivated,
            )
            detail = {
                "added_scopes": sorted(added),
                "new_user": new_user,
                "refresh_token_stored": refresh_token is not None,
                "offline": grant.offline,
                "reactivated": reactivated,
                **(audit_detail or {}),
            }
            if one_statement:
                assert replay is not None
                await conn.execute(
                    self._prebuilt(
                        ("signed_in_remembered", columns),
                        lambda: self._signed_in_remembered(columns),
                    ),
                    {
                        **params(values),
                        "w_id": claimed["id"],
                        **self._row(
                            replay.code_hash, sub, replay.answer(record), now, replay.ttl, "r_"
                        ),
                        "a_at_now": now,
                        "a_sub": sub,
                        "a_client_id": client_id,
                        "a_detail": detail,
                    },
                )
            else:
                await self._audit(
                    conn, now, "sign_in", sub=sub, client_id=client_id, outcome="ok", detail=detail
                )
                if replay is not None:
                    answer = replay.answer(record)
                    await self._remember(conn, now, replay.code_hash, answer, replay.ttl, sub)
            if replay is not None:
                await self._purge_now_and_then(conn, now)
            await enqueue(conn, outbox_for(outbox, record))
        return record

    async def _claim_user_and_grant(
        self, conn: AsyncConnection, profile: UserProfile, client_id: str, now: datetime
    ) -> tuple[bool, sa.Row[Any] | Mapping[str, Any], Mapping[Any, Any]]:
        """The user upserted and the grant's row claimed (:meth:`_grant_claim`): (whether the
        user is new, the user's row, the grant's row), as stored now. PostgreSQL does both in
        one statement (:func:`_user_and_grant_claim`)."""
        if self.dialect != "postgresql":
            new_user, user = await self._upsert_user(conn, profile, now)
            claim = await conn.execute(
                self._prebuilt("grant_claim", self._grant_claim),
                {
                    "p_sub": profile.sub,
                    "p_client_id": client_id,
                    "p_status": GrantStatus.ACTIVE.value,
                    "p_created_at": now,
                    "p_updated_at": now,
                },
            )
            return new_user, user, claim.one()._mapping
        claims = {name: getattr(profile, name) for name in PROFILE_FIELDS}
        bound = {
            **params({"sub": profile.sub, "created_at": now, "updated_at": now, **claims}),
            "g_client_id": client_id,
            "g_status": GrantStatus.ACTIVE.value,
        }
        both = (
            (await conn.execute(self._prebuilt("user_and_grant", _user_and_grant_claim), bound))
            .one()
            ._mapping
        )
        user_row = {c.name: both["u_" + c.name] for c in users.c}
        grant_row = {c.name: both["g_" + c.name] for c in grants.c}
        return bool(both["gk_inserted"]), user_row, grant_row

    async def _upsert_user(
        self, conn: AsyncConnection, profile: UserProfile, now: datetime
    ) -> tuple[bool, sa.Row[Any]]:
        """SQLite: (whether the user is new, the user's row as stored now)."""
        claims = {name: getattr(profile, name) for name in PROFILE_FIELDS}
        bound = params({"sub": profile.sub, "created_at": now, "updated_at": now, **claims})
        inserted = await conn.execute(self._prebuilt("user_insert", self._user_insert), bound)
        row = inserted.first()
        if row is not None:
            return True, row
        # A claim absent from this ID token (narrower scopes) keeps the stored value.
        updated = await conn.execute(USER_SIGNED_IN, bound)
        return False, updated.one()

    def _user_insert(self) -> Any:
        # RETURNING, not rowcount: psycopg reports rowcount -1 for this statement.
        return (
            self._insert(users)
            .values({c.name: param(c) for c in users.c})
            .on_conflict_do_nothing(index_elements=["sub"])
            .returning(*users.c)
        )

    def _signed_in_remembered(self, columns: tuple[str, ...]) -> Any:
        """PostgreSQL: the grant's new values (:func:`_grant_signed_in` without RETURNING), the
        sign-in's audit event and the answer to a retry of the code (:meth:`_upsert`) in ONE
        statement (the update and the event's insert as data-modifying CTEs): two round trips
        fewer per sign-in. Parameters: :func:`params` of the values and ``w_id``,
        :meth:`_row`'s with the prefix ``r_``, and ``a_at_now``, ``a_sub``, ``a_client_id``,
        ``a_detail``."""
        event = audit_events.insert().values(
            at=sa.bindparam("a_at_now", type_=audit_events.c.at.type),
            kind="sign_in",
            sub=sa.bindparam("a_sub", type_=audit_events.c.sub.type),
            client_id=sa.bindparam("a_client_id", type_=audit_events.c.client_id.type),
            outcome="ok",
            detail=sa.bindparam("a_detail", type_=audit_events.c.detail.type),
        )
        update = _grant_signed_in(columns, returning=False)
        remembered = self._upsert(prefix="r_")
        return remembered.add_cte(update.cte("signed_in")).add_cte(event.cte("audited"))

    def _grant_claim(self) -> Any:
        """The grant's row, a new empty one if there was none, locked for this transaction
        in one statement: an upsert whose update changes nothing locks the row it meets as
        ``SELECT … FOR UPDATE`` would (PostgreSQL), and ``RETURNING`` gives it as stored. An
        ``INSERT … DO NOTHING`` and then that ``SELECT`` took two round trips."""
        insert = self._insert(grants).values(
            sub=param(grants.c.sub),
            client_id=param(grants.c.client_id),
            scopes="",
            version=0,
            status=param(grants.c.status),
            created_at=param(grants.c.created_at),
            updated_at=param(grants.c.updated_at),
        )
        return insert.on_conflict_do_update(
            index_elements=["sub", "client_id"], set_={"sub": insert.excluded.sub}
        ).returning(*grants.c)


def _grant_signed_in(columns: tuple[str, ...], *, returning: bool = True) -> sa.Update:
    update = (
        grants.update()
        .where(grants.c.id == sa.bindparam("w_id", type_=grants.c.id.type))
        .values({name: param(grants.c[name]) for name in columns})
    )
    return update.returning(*grants.c) if returning else update


def _as_stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as :class:`~grantkeeper.store.tables.UTCDateTime` gives them back: aware
    datetimes in UTC (a naive one is refused by the statement that writes it)."""
    return {
        name: value.astimezone(UTC)
        if isinstance(value, datetime) and value.tzinfo is not None
        else value
        for name, value in values.items()
    }


def _user_and_grant_claim() -> sa.Select[Any]:
    """PostgreSQL: :func:`_user_upsert` and the grant's claim (as ``_grant_claim``: the row,
    a new empty one if there was none, locked for this transaction) in one statement, a round
    trip fewer per sign-in. The claim inserts the user's ``sub`` as the upsert returns it, so
    PostgreSQL runs the user's upsert first: rows are locked user, then grant, as before.
    Columns: the user's as ``u_<name>`` with ``gk_inserted``, the grant's as ``g_<name>``.
    Parameters: :func:`params` of the user's columns, ``g_client_id`` and ``g_status``."""
    user = _user_upsert().cte("gk_user")
    at = grants.c.created_at.type
    insert = postgresql.insert(grants).from_select(
        ["sub", "client_id", "scopes", "version", "status", "created_at", "updated_at"],
        sa.select(
            user.c.sub,
            sa.bindparam("g_client_id", type_=grants.c.client_id.type),
            sa.literal("", grants.c.scopes.type),
            sa.literal(0, grants.c.version.type),
            sa.bindparam("g_status", type_=grants.c.status.type),
            sa.bindparam("p_created_at", type_=at),
            sa.bindparam("p_updated_at", type_=at),
        ),
    )
    claim = (
        insert.on_conflict_do_update(
            index_elements=["sub", "client_id"], set_={"sub": insert.excluded.sub}
        )
        .returning(*grants.c)
        .cte("gk_claim")
    )
    return sa.select(
        *(user.c[c.name].label("u_" + c.name) for c in users.c),
        user.c.gk_inserted,
        *(claim.c[c.name].label("g_" + c.name) for c in grants.c),
    ).select_from(user.join(claim, sa.true()))


def _user_upsert() -> Any:
    """PostgreSQL: the user inserted, or a returning user's claims updated as
    :data:`USER_SIGNED_IN` does, in one statement; ``gk_inserted`` tells which (a row this
    statement inserted has no ``xmax``; one it updated has this transaction's)."""
    insert = postgresql.insert(users).values({c.name: param(c) for c in users.c})
    claims = {
        name: sa.func.coalesce(insert.excluded[name], users.c[name]) for name in PROFILE_FIELDS
    }
    return insert.on_conflict_do_update(
        index_elements=["sub"], set_={"updated_at": insert.excluded.updated_at, **claims}
    ).returning(*users.c, sa.literal_column("xmax = 0", sa.Boolean).label("gk_inserted"))


#: A returning user's claims: one absent from this ID token (None) keeps the stored value.
USER_SIGNED_IN = hot(
    users.update()
    .where(users.c.sub == sa.bindparam("p_sub", type_=users.c.sub.type))
    .values(
        updated_at=param(users.c.updated_at),
        **{name: sa.func.coalesce(param(users.c[name]), users.c[name]) for name in PROFILE_FIELDS},
    )
    .returning(*users.c)
)
