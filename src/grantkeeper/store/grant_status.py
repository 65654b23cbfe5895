"""Ending or pausing grants: status changes, token erasure, forgetting a user; and the
last-use stamp, the one grant write that does not bump the version."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.leases import NO_LEASE
from grantkeeper.store.records import GrantStatus
from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import grant_cooldowns, grants, signin_replays, users
from grantkeeper.store.webhook_outbox import Outbox, enqueue, outbox_for

ERASED_TOKENS: dict[str, Any] = {
    "refresh_token": None,
    "refresh_token_kid": None,
    "refresh_token_sha512x2": None,
    "refresh_token_prefix_sha256": None,
    "access_token": None,
    "access_token_kid": None,
    "access_token_expires_at": None,
}


class GrantStatusChanges(StoreCore):
    """Status changes and erasure; each bumps the version and clears any lease."""

    async def set_status(
        self,
        sub: str,
        client_id: str | None,
        status: GrantStatus | str,
        reason: str | None,
        *,
        expected_version: int | None = None,
        erase_access_token: bool = True,
        outbox: Outbox[int] | None = None,
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
            **NO_LEASE,
        }
        if erase_access_token:
            values.update(access_token=None, access_token_kid=None, access_token_expires_at=None)
        return await self._end_grants(sub, client_id, values, expected_version, outbox)

    async def mark_revoked(
        self,
        sub: str,
        client_id: str | None,
        reason: str,
        expected_version: int | None = None,
        *,
        outbox: Outbox[int] | None = None,
    ) -> int:
        """The provider refused the grant (``invalid_grant``, RISC): status ``revoked``.

        The refresh token stays (encrypted) so a later RISC event can still match its hash;
        it is never used again unless a sign-in replaces it.
        """
        return await self.set_status(
            sub,
            client_id,
            GrantStatus.REVOKED,
            reason,
            expected_version=expected_version,
            outbox=outbox,
        )

    async def mark_pending_revocation(
        self,
        sub: str,
        client_id: str | None,
        reason: str = "disconnect",
        *,
        expected_version: int | None = None,
    ) -> int:
        """Disconnected, but the provider could not be told yet: keep the refresh token (the
        sweep needs it to revoke) and erase the access token. With ``expected_version`` it is a
        compare-and-swap (a sign-in that wrote meanwhile is left active)."""
        return await self.set_status(
            sub,
            client_id,
            GrantStatus.PENDING_REVOCATION,
            reason,
            expected_version=expected_version,
        )

    async def erase_tokens(
        self,
        sub: str,
        client_id: str | None = None,
        *,
        status: GrantStatus | str | None = None,
        reason: str | None = None,
        expected_version: int | None = None,
        outbox: Outbox[int] | None = None,
    ) -> int:
        """Erase every stored token (and its fingerprints) of the user's grants, optionally
        setting a status. Bumps the version and clears leases. With ``expected_version`` it is
        a compare-and-swap (a sign-in that wrote meanwhile is not erased). Returns grants
        changed. ``outbox``: notifications written in the same transaction if a grant changed."""
        now = self._clock.now()
        values: dict[str, Any] = {
            **ERASED_TOKENS,
            **NO_LEASE,
            "version": grants.c.version + 1,
            "updated_at": now,
        }
        if status is not None:
            values.update(status=str(status), status_reason=reason, status_changed_at=now)
        return await self._end_grants(sub, client_id, values, expected_version, outbox)

    async def _end_grants(
        self,
        sub: str,
        client_id: str | None,
        values: dict[str, Any],
        expected_version: int | None,
        outbox: Outbox[int] | None,
    ) -> int:
        """Write ``values`` to the grants (a compare-and-swap with ``expected_version``); a
        grant that changed loses its kept sign-in answers and writes ``outbox`` with it."""
        query = grants.update().where(*self._grant_filter(sub, client_id)).values(**values)
        if expected_version is not None:
            query = query.where(grants.c.version == expected_version)
        async with self._write() as conn:
            result = await conn.execute(query)
            if result.rowcount:
                await self._drop_signin_answers(conn, sub)
                await enqueue(conn, outbox_for(outbox, result.rowcount))
        return result.rowcount

    async def _drop_signin_answers(self, conn: AsyncConnection, sub: str) -> None:
        # A kept sign-in answer dies with the grant: once it is revoked, disconnected or erased,
        # a retried POST of the code must not hand its identity out again.
        await conn.execute(signin_replays.delete().where(signin_replays.c.sub == sub))

    async def forget_user(self, sub: str) -> bool:
        """Erase the user's profile, grants and cached sign-in responses (the audit log keeps
        only the ``sub``). Returns whether the user existed."""
        async with self._write() as conn:
            if self.dialect == "postgresql":
                # The user's row first, as a sign-in locks it (then the grant's): deleting the
                # grants first deadlocked with a sign-in of the same user.
                await conn.execute(
                    sa.select(users.c.sub).where(users.c.sub == sub).with_for_update()
                )
            await conn.execute(signin_replays.delete().where(signin_replays.c.sub == sub))
            await conn.execute(grant_cooldowns.delete().where(grant_cooldowns.c.sub == sub))
            await conn.execute(grants.delete().where(grants.c.sub == sub))
            result = await conn.execute(users.delete().where(users.c.sub == sub))
        return result.rowcount == 1
