"""Refresh coordination: a lease on the grant row taken by compare-and-swap (expiring by itself
if its holder dies), and the refresh's result written with a compare-and-swap on ``version``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grantkeeper.store.audit_log import AUDIT_INSERT, audit_row
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.cooldowns import COOLDOWN_CLEARED
from grantkeeper.store.records import Grant
from grantkeeper.store.store_core import OF_GRANT, StoreCore, of_grant, param, params
from grantkeeper.store.tables import audit_events, grant_cooldowns, grants

NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


class GrantLeases(StoreCore):
    """The refresh lease and the versioned write of a refresh."""

    async def try_acquire_lease(
        self,
        sub: str,
        client_id: str,
        owner: str,
        ttl: timedelta,
        *,
        unless_cooling_down: bool = False,
    ) -> Grant | None:
        """Take the grant's refresh lease unless another owner holds a live one.

        Compare-and-swap: succeeds if the lease is free, expired, or already ``owner``'s (the
        lease is then extended). Returns the grant as it is under the lease, or ``None`` if
        the lease is held by someone else or the grant does not exist (or, with
        ``unless_cooling_down``, while the grant's refresh cooldown lasts: the caller then
        reads the cooldown). One statement; the lease does not change ``version``.
        """
        now = self._clock.now()
        statement = self._prebuilt(
            ("lease", unless_cooling_down), lambda: _lease(unless_cooling_down)
        )
        async with self._write_one(direct=True) as conn:
            taken = await conn.execute(
                statement,
                {
                    **of_grant(sub, client_id),
                    "now": now,
                    "p_lease_owner": owner,
                    "p_lease_expires_at": now + ttl,
                },
            )
            row = taken.first()
        return None if row is None else self._codec.grant(row)

    async def release_lease(self, sub: str, client_id: str, owner: str) -> bool:
        """Give the lease back; ``False`` if ``owner`` no longer held it."""
        async with self._write_one(direct=True) as conn:
            result = await conn.execute(
                RELEASE_LEASE, {**of_grant(sub, client_id), "w_owner": owner}
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
        last_used_at: datetime | None = None,
        audit_detail: Mapping[str, Any] | None = None,
        hand_out_detail: Mapping[str, Any] | None = None,
        clear_cooldown: bool = False,
    ) -> bool:
        """Write a refresh's result if the grant is still at ``expected_version``.

        One statement writes the new access token, a rotated refresh token (if the provider
        sent one) and ``last_refreshed_at``, bumps the version and clears ``owner``'s lease.
        Returns ``False`` and changes nothing (the lease included) when the version moved on:
        someone else refreshed, signed in or revoked meanwhile; re-read the grant.
        ``last_used_at``: the refresh is for a caller, who uses the token now.
        ``audit_detail``: a written refresh also appends a ``refresh`` audit event (outcome
        ``ok``) in the same transaction; ``hand_out_detail`` a ``token`` event (outcome
        ``refreshed``: the new token handed to a service key); ``clear_cooldown`` ends the
        grant's refresh cooldown (a success clears it).
        """
        now = self._clock.now()
        values: dict[str, Any] = {
            **self._codec.access_columns(sub, client_id, access_token, expires_at),
            "last_refreshed_at": now,
            "updated_at": now,
        }
        if refresh_token is not None:
            values.update(self._codec.refresh_columns(sub, client_id, refresh_token))
        if refresh_token_expires_at is not None:
            values["refresh_token_expires_at"] = refresh_token_expires_at
        if last_used_at is not None:
            values["last_used_at"] = last_used_at
        columns = tuple(values)
        releasing = owner is not None
        written = {
            **params(values),
            **of_grant(sub, client_id),
            "w_version": expected_version,
            "w_owner": owner,
        }
        details = [
            (kind, dict(detail))
            for kind, detail in (("refresh", audit_detail), ("token", hand_out_detail))
            if detail is not None
        ]
        kinds = tuple(kind for kind, _ in details)
        if self.dialect == "postgresql":
            at_once = self._prebuilt(
                ("save_refreshed_at_once", columns, releasing, kinds, clear_cooldown),
                lambda: _save_refreshed_at_once(columns, releasing, kinds, clear_cooldown),
            )
            event_details = {f"a_detail_{n}": detail for n, (_, detail) in enumerate(details)}
            async with self._write_one(direct=True) as conn:
                result = await conn.execute(at_once, {**written, **event_details, "a_at": now})
            return bool(result.scalar_one() == 1)
        # SQLite has no data-modifying CTEs: one transaction (its statements cost microseconds
        # on the event loop there, see sqlite_inline).
        statement = self._prebuilt(
            ("save_refreshed", columns, releasing),
            lambda: _save_refreshed(columns, releasing=releasing),
        )
        async with self._write() as conn:
            result = await conn.execute(statement, written)
            saved: bool = result.rowcount == 1
            events = [
                audit_row(now, kind, sub, client_id, REFRESH_EVENT_OUTCOMES[kind], detail)
                for kind, detail in details
            ]
            if saved and events:
                # One statement for both events (an executemany).
                await conn.execute(AUDIT_INSERT, events)
            if saved and clear_cooldown:
                await conn.execute(COOLDOWN_CLEARED, {"sub": sub, "client_id": client_id})
        return saved


def _lease(unless_cooling_down: bool) -> sa.Update:
    """Take the lease: parameters ``sub``, ``client_id``, ``now`` and the new owner and
    expiry."""
    now = sa.bindparam("now", type_=grants.c.lease_expires_at.type)
    conditions = [
        *OF_GRANT,
        sa.or_(
            grants.c.lease_owner.is_(None),
            grants.c.lease_expires_at.is_(None),
            grants.c.lease_expires_at <= now,
            grants.c.lease_owner == param(grants.c.lease_owner),
        ),
    ]
    if unless_cooling_down:
        conditions.append(
            ~sa.exists().where(
                grant_cooldowns.c.sub == grants.c.sub,
                grant_cooldowns.c.client_id == grants.c.client_id,
                grant_cooldowns.c.until > now,
            )
        )
    return (
        grants.update()
        .where(*conditions)
        .values(
            lease_owner=param(grants.c.lease_owner),
            lease_expires_at=param(grants.c.lease_expires_at),
        )
        .returning(*grants.c)
    )


#: The audit events a refresh's write may append, by kind: their outcome ("token": the new
#: token handed to a service key).
REFRESH_EVENT_OUTCOMES = {"refresh": "ok", "token": "refreshed"}


def _save_refreshed_at_once(
    columns: tuple[str, ...], releasing: bool, kinds: tuple[str, ...], clear_cooldown: bool
) -> sa.Select[Any]:
    """PostgreSQL: a refresh's write, its audit events (``kinds``; parameters ``a_at`` and
    ``a_detail_<n>``) and the end of the cooldown in ONE statement, the last two in
    data-modifying CTEs that act only on the row the UPDATE wrote (none when the version
    moved on). Its one row counts the grants written (1 or 0). Atomic by itself, so it runs
    without BEGIN and COMMIT: one round trip instead of four or five (BEGIN, UPDATE, INSERT,
    DELETE, COMMIT), each of which cost ~150-250 µs of SQLAlchemy's and psycopg's CPU.

    The parts share the statement's snapshot: a cooldown row first committed by another
    session while the UPDATE waited for the grant's row is not deleted (a separate DELETE
    would have seen it). That takes a failed refresh of the same grant recorded at that
    moment, by a holder whose lease ran out; a failure recorded just after this statement
    leaves its cooldown either way, and the cooldown ends on its own (at most
    ``refresh_cooldown_max_seconds``)."""
    saved = (
        _save_refreshed(columns, releasing=releasing)
        .returning(grants.c.sub, grants.c.client_id)
        .cte("saved")
    )
    acting: list[sa.CTE] = []
    if kinds:
        rows = [
            sa.select(
                sa.bindparam("a_at", type_=audit_events.c.at.type),
                sa.literal(kind, audit_events.c.kind.type),
                saved.c.sub,
                saved.c.client_id,
                sa.literal(REFRESH_EVENT_OUTCOMES[kind], audit_events.c.outcome.type),
                sa.bindparam(f"a_detail_{n}", type_=audit_events.c.detail.type),
            ).select_from(saved)
            for n, kind in enumerate(kinds)
        ]
        # UNION ALL in this order: the refresh event gets the lower id, as before.
        source = rows[0] if len(rows) == 1 else sa.union_all(*rows)
        columns_in = ["at", "kind", "sub", "client_id", "outcome", "detail"]
        acting.append(audit_events.insert().from_select(columns_in, source).cte("audited"))
    if clear_cooldown:
        cleared = grant_cooldowns.delete().where(
            grant_cooldowns.c.sub == saved.c.sub, grant_cooldowns.c.client_id == saved.c.client_id
        )
        acting.append(cleared.cte("cleared"))
    return sa.select(sa.func.count()).select_from(saved).add_cte(*acting)


def _save_refreshed(columns: tuple[str, ...], *, releasing: bool) -> sa.Update:
    """A refresh's write: ``columns`` as parameters, the version bumped if it is still
    ``version``; with ``releasing`` the lease of ``owner`` let go."""
    values: dict[str, Any] = {name: param(grants.c[name]) for name in columns}
    values["version"] = grants.c.version + 1
    if releasing:
        mine = grants.c.lease_owner == sa.bindparam("w_owner", type_=grants.c.lease_owner.type)
        values["lease_owner"] = sa.case((mine, None), else_=grants.c.lease_owner)
        values["lease_expires_at"] = sa.case((mine, None), else_=grants.c.lease_expires_at)
    return (
        grants.update()
        .where(*OF_GRANT, grants.c.version == sa.bindparam("w_version", type_=sa.Integer()))
        .values(**values)
    )


RELEASE_LEASE = hot(
    grants.update()
    .where(
        *OF_GRANT, grants.c.lease_owner == sa.bindparam("w_owner", type_=grants.c.lease_owner.type)
    )
    .values(**NO_LEASE)
)
