"""Refresh coordination: a lease on the grant row taken by compare-and-swap (expiring by itself
if its holder dies), and the refresh's result written with a compare-and-swap on ``version``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grantkeeper.store.audit_log import AuditLog
from grantkeeper.store.cooldowns import GrantCooldowns
from grantkeeper.store.records import Grant
from grantkeeper.store.store_core import StoreCore
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
        conditions = [
            *self._grant_filter(sub, client_id),
            sa.or_(
                grants.c.lease_owner.is_(None),
                grants.c.lease_expires_at.is_(None),
                grants.c.lease_expires_at <= now,
                grants.c.lease_owner == owner,
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
        async with self._write() as conn:
            taken = await conn.execute(
                grants.update()
                .where(*conditions)
                .values(lease_owner=owner, lease_expires_at=now + ttl)
                .returning(*grants.c)
            )
            row = taken.first()
        return None if row is None else self._codec.grant(row)

    async def release_lease(self, sub: str, client_id: str, owner: str) -> bool:
        """Give the lease back; ``False`` if ``owner`` no longer held it."""
        async with self._write() as conn:
            result = await conn.execute(
                grants.update()
                .where(*self._grant_filter(sub, client_id), grants.c.lease_owner == owner)
                .values(**NO_LEASE)
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
            "version": grants.c.version + 1,
            "last_refreshed_at": now,
            "updated_at": now,
        }
        if refresh_token is not None:
            values.update(self._codec.refresh_columns(sub, client_id, refresh_token))
        if refresh_token_expires_at is not None:
            values["refresh_token_expires_at"] = refresh_token_expires_at
        if last_used_at is not None:
            values["last_used_at"] = last_used_at
        if owner is not None:
            mine = grants.c.lease_owner == owner
            values["lease_owner"] = sa.case((mine, None), else_=grants.c.lease_owner)
            values["lease_expires_at"] = sa.case((mine, None), else_=grants.c.lease_expires_at)
        async with self._write() as conn:
            result = await conn.execute(
                grants.update()
                .where(*self._grant_filter(sub, client_id), grants.c.version == expected_version)
                .values(**values)
            )
            saved: bool = result.rowcount == 1
            if saved and audit_detail is not None:
                await AuditLog._audit(
                    conn,
                    now,
                    "refresh",
                    sub=sub,
                    client_id=client_id,
                    outcome="ok",
                    detail=audit_detail,
                )
            if saved and hand_out_detail is not None:
                await AuditLog._audit(
                    conn,
                    now,
                    "token",
                    sub=sub,
                    client_id=client_id,
                    outcome="refreshed",
                    detail=hand_out_detail,
                )
            if saved and clear_cooldown:
                await conn.execute(GrantCooldowns._cooldown_cleared(sub, client_id))
        return saved
