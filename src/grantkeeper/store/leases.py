"""Refresh coordination: a lease on the grant row taken by compare-and-swap (expiring by itself
if its holder dies), and the refresh's result written with a compare-and-swap on ``version``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grantkeeper.store.audit_log import AUDIT_INSERT, audit_row
from grantkeeper.store.cooldowns import COOLDOWN_CLEARED
from grantkeeper.store.records import Grant
from grantkeeper.store.store_core import OF_GRANT, StoreCore, of_grant, param, params
from grantkeeper.store.tables import grant_cooldowns, grants

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
        async with self._write_one() as conn:
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
        async with self._write_one() as conn:
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
        statement = self._prebuilt(
            ("save_refreshed", columns, owner is not None),
            lambda: _save_refreshed(columns, releasing=owner is not None),
        )
        async with self._write() as conn:
            result = await conn.execute(
                statement,
                {
                    **params(values),
                    **of_grant(sub, client_id),
                    "w_version": expected_version,
                    "w_owner": owner,
                },
            )
            saved: bool = result.rowcount == 1
            events = [
                audit_row(now, kind, sub, client_id, outcome, detail)
                for kind, outcome, detail in (
                    ("refresh", "ok", audit_detail),
                    ("token", "refreshed", hand_out_detail),  # the new token to a service key
                )
                if detail is not None
            ]
            if saved and events:
                # One statement for both events (an executemany: one round trip on PostgreSQL).
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


RELEASE_LEASE = (
    grants.update()
    .where(
        *OF_GRANT, grants.c.lease_owner == sa.bindparam("w_owner", type_=grants.c.lease_owner.type)
    )
    .values(**NO_LEASE)
)
