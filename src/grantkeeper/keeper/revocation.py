"""Revoking a grant: one path for a disconnect and for the sweep that completes a revocation
the provider could not take at the time.

Either way the grant ends ``disconnected`` with its tokens erased, the audit log says who
finished it (``by``), and one ``disconnected`` event is announced, so the app's
``grant.revoked`` webhook fires however the revocation ended. A revocation the provider cannot
take now (timeout, 5xx) is recorded as pending; the sweep retries it under the grant's lease.

The erasure is a compare-and-swap on the version read before the provider was called: a lease
does not keep a sign-in out, so a user who signs in again while the revoke call runs keeps the
new grant (the action is then ``revocation_superseded``: no erasure, no ``grant.revoked``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from grantkeeper.errors import GrantkeeperError, UnknownUser
from grantkeeper.keeper.decisions import DISCONNECT_REVOKE_TIMEOUT, FORGET_AFTER_REVOCATION
from grantkeeper.keeper.parts import Parts
from grantkeeper.keeper.results import DisconnectOutcome
from grantkeeper.store import Grant, GrantStatus

log = logging.getLogger("grantkeeper.keeper")

#: What one attempt did: the provider confirmed, the revocation waits for the sweep, or a
#: sign-in replaced the grant while the provider answered (the new grant is left alone).
Attempt = Literal["revoked", "pending", "superseded"]


class Revocations:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def disconnect(
        self, sub: str, *, forget: bool = False, caller: str | None = None
    ) -> DisconnectOutcome:
        """See :meth:`Keeper.disconnect`."""
        store = self._parts.store
        user = await store.get_user(sub)
        grants = await store.list_grants(sub=sub)
        if user is None and not grants:
            if forget:
                return DisconnectOutcome(sub, False, False, False, 0)
            raise UnknownUser(f"No user {sub} is stored.")
        revoked = pending = superseded = False
        by = {"caller": caller} if caller else {}
        for grant in grants:
            if grant.refresh_token is None and grant.access_token is None:
                continue
            attempt = await self._attempt(grant, forget=forget, by=by)
            revoked = revoked or attempt == "revoked"
            pending = pending or attempt == "pending"
            superseded = superseded or attempt == "superseded"
        forgotten = False
        # A sign-in that landed during the revoke call is newer than the request to forget.
        if forget and not pending and not superseded:
            forgotten = await store.forget_user(sub)
            await store.append_audit("forget", sub=sub, outcome="ok")
        return DisconnectOutcome(sub, revoked, pending, forgotten, len(grants))

    async def _attempt(self, grant: Grant, *, forget: bool, by: dict[str, str]) -> Attempt:
        """One short attempt at the provider: the app's answer never waits on Google."""
        token = grant.refresh_token or grant.access_token
        assert token is not None
        try:
            await self._parts.provider().revoke(
                token, retry=False, time_limit=DISCONNECT_REVOKE_TIMEOUT
            )
        except GrantkeeperError as error:
            if not error.retryable:
                raise
            reason = FORGET_AFTER_REVOCATION if forget else "disconnect"
            changed = await self._parts.store.mark_pending_revocation(
                grant.sub, grant.client_id, reason, expected_version=grant.version
            )
            if not changed:
                return "superseded"
            await self._parts.store.append_audit(
                "disconnect",
                sub=grant.sub,
                client_id=grant.client_id,
                outcome="revocation_pending",
                detail={"error": error.code, "forget": forget, **by},
            )
            return "pending"
        if not await self._completed(grant, by="disconnect", forget=forget, audit=by):
            return "superseded"
        return "revoked"

    async def retry_pending(self, grant: Grant, owner: str, lease: timedelta) -> str | None:
        """Retry a pending revocation under the grant's lease (several hosts may sweep at
        once). Returns the sweep's action: ``revocation_completed``,
        ``revocation_still_pending``, ``revocation_superseded`` (a sign-in replaced the grant
        while the provider answered), or None when another host holds the grant or it moved on.
        """
        store = self._parts.store
        leased = await store.try_acquire_lease(grant.sub, grant.client_id, owner, lease)
        if leased is None:
            return None
        try:
            if leased.status != GrantStatus.PENDING_REVOCATION:
                return None
            token = leased.refresh_token or leased.access_token
            if token is not None:
                try:
                    await self._parts.provider().revoke(token)
                except GrantkeeperError as error:
                    log.info("revocation for %s still pending: %s", grant.sub, error.code)
                    await store.append_audit(
                        "disconnect",
                        sub=grant.sub,
                        client_id=grant.client_id,
                        outcome="revocation_pending",
                        detail={"error": error.code, "by": "sweep"},
                    )
                    return "revocation_still_pending"
            forget = leased.status_reason == FORGET_AFTER_REVOCATION
            if not await self._completed(leased, by="sweep", forget=forget):
                log.info("revocation for %s superseded by a sign-in", grant.sub)
                return "revocation_superseded"
            if forget:
                await store.forget_user(grant.sub)
                await store.append_audit(
                    "forget", sub=grant.sub, outcome="ok", detail={"by": "sweep"}
                )
            return "revocation_completed"
        finally:
            await store.release_lease(grant.sub, grant.client_id, owner)

    async def _completed(
        self, grant: Grant, *, by: str, forget: bool, audit: dict[str, str] | None = None
    ) -> bool:
        """The provider confirmed: erase the tokens (this also clears a lease) and write the
        ``grant.revoked`` notification in that transaction, audit (with ``audit`` as the detail
        of a disconnect), announce. The erasure only lands if ``grant`` is still at the version
        read before the provider was called; returns False (nothing written) when a sign-in
        changed it meanwhile."""
        store = self._parts.store
        done = self._parts.event("disconnected", grant.sub, grant.client_id, forget=forget, by=by)
        erased = await store.erase_tokens(
            grant.sub,
            grant.client_id,
            status=GrantStatus.DISCONNECTED,
            reason="disconnect",
            expected_version=grant.version,
            outbox=self._parts.outbox(done),
        )
        if not erased:
            await store.append_audit(
                "disconnect",
                sub=grant.sub,
                client_id=grant.client_id,
                outcome="superseded",
                detail=(audit or {}) if by == "disconnect" else {"by": by},
            )
            return False
        detail = (audit or {}) if by == "disconnect" else {"by": by}
        await store.append_audit(
            "disconnect", sub=grant.sub, client_id=grant.client_id, outcome="revoked", detail=detail
        )
        await self._parts.events.emit(done)
        return True
