"""Offline access: fresh access tokens on demand, one refresh per grant at a time.

Within a process an ``asyncio.Lock`` per grant queues callers behind the refresh in flight (and
they take its result); across processes and hosts the store's lease does (taken and released by
compare-and-swap, expiring on its own if its holder dies), and the result is written with a
compare-and-swap on the grant's version. No database transaction is held open across a call to
the provider, and a refresh token the provider rotates is written in the same statement as the
new access token, before anyone is handed that token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from grantkeeper.errors import GrantkeeperError, GrantRevoked, MissingScopes, UnknownUser
from grantkeeper.keeper.cooldown import RefreshCooldown
from grantkeeper.keeper.decisions import (
    access_token_expiry,
    is_fresh,
    missing_scopes,
    revocation_reason,
)
from grantkeeper.keeper.events import GrantEvent
from grantkeeper.keeper.parts import Parts
from grantkeeper.keeper.reconsent import reconsent
from grantkeeper.keeper.results import AccessToken
from grantkeeper.oauth import RefreshTokenRejected, normalize_scopes
from grantkeeper.store import Grant, GrantStatus
from grantkeeper.tracing import span

log = logging.getLogger("grantkeeper.keeper")

#: "Last used" is kept to this precision, so handing out a fresh token is a read, not a write.
LAST_USED_PRECISION = timedelta(seconds=60)


@dataclasses.dataclass
class _Flight:
    """The callers of one grant in this process: they queue on ``lock`` behind the refresh in
    flight and take its ``outcome`` (a token, or the error it ended with)."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    callers: int = 0
    outcome: AccessToken | GrantkeeperError | None = None


class OfflineAccess:
    """The access-token side of the keeper (one per open keeper)."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._store = parts.store
        self.settings = parts.settings
        self.clock = parts.clock
        self.events = parts.events
        self._owner = parts.owner
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._cooldown = RefreshCooldown(parts)

    async def access_token(
        self,
        sub: str,
        scopes: Iterable[str] | str | None = None,
        *,
        rejected: str | None = None,
        caller: str | None = None,
    ) -> AccessToken:
        """See :meth:`Keeper.access_token`."""
        wanted = normalize_scopes(scopes) if scopes else frozenset()
        # A service key's hand-out is audited under its name (never the token).
        hand_out = (
            {"caller": caller, "scopes": sorted(wanted), "forced": rejected is not None}
            if caller is not None
            else None
        )
        try:
            token, audited = await self._access_token(sub, wanted, rejected, caller, hand_out)
        except (MissingScopes, GrantRevoked) as error:
            await self._explain(error, sub)
            raise
        if hand_out is not None and not audited:
            # A token shared by the refresh this caller queued behind.
            await self._store.record_hand_out(
                token.sub, self._parts.client_id, audit_detail=hand_out
            )
        return token

    async def _explain(self, error: MissingScopes | GrantRevoked, sub: str) -> None:
        """Put in the problem what the app must do, per platform, to get the grant back."""
        if "reconsent" in error.extra:
            return  # callers queued behind one refresh share its error
        try:
            client_id = self._parts.client_id
            grant = await self._store.get_grant(sub, client_id)
            metadata = await self._parts.provider().discover()
        except GrantkeeperError:
            return  # the problem stands on its own without the recipe
        if isinstance(error, MissingScopes):
            scopes, needs_refresh_token = error.missing, grant is None or not grant.offline
        else:
            scopes, needs_refresh_token = sorted(grant.scopes) if grant else [], True
        error.extra["reconsent"] = reconsent(
            sub=sub,
            scopes=scopes,
            needs_refresh_token=needs_refresh_token,
            authorization_endpoint=metadata.authorization_endpoint,
            client_id=client_id,
            web_redirect_uri=self.settings.web_redirect_uri,
        )

    async def _access_token(
        self,
        sub: str,
        wanted: frozenset[str],
        rejected: str | None,
        caller: str | None,
        hand_out: dict[str, Any] | None,
    ) -> tuple[AccessToken, bool]:
        """The token, and whether its hand-out was audited on the way (every path but a token
        shared by another caller's refresh writes it with the write it makes anyway)."""
        grant = await self._usable_grant(sub)
        missing = missing_scopes(grant.scopes, wanted)
        if missing:
            raise MissingScopes(missing)
        if self._fresh(grant, rejected):
            return await self._hand_out(grant, refreshed=False, hand_out=hand_out), True
        key = (grant.sub, grant.client_id)
        flight = self._flights.setdefault(key, _Flight())
        flight.callers += 1
        # Waiting behind another caller's refresh makes this read stale; otherwise it is the
        # refresh's first read (the lease, taken by compare-and-swap, re-checks the row).
        read = None if flight.lock.locked() else grant
        try:
            async with flight.lock:
                shared = flight.outcome
                if isinstance(shared, GrantkeeperError):
                    # The refresh we queued behind failed; trying again at once would only
                    # multiply the load on a provider that is already failing.
                    raise shared
                if shared is not None and self._still_good(shared, rejected):
                    return dataclasses.replace(shared, refreshed=False), False
                try:
                    token = await self._refresh(
                        grant.sub, grant.client_id, rejected, caller, hand_out, read
                    )
                except GrantkeeperError as error:
                    flight.outcome = error
                    raise
                flight.outcome = token if token.refreshed else None
                return token, True
        finally:
            flight.callers -= 1
            if flight.callers == 0 and self._flights.get(key) is flight:
                # Nobody is queued: forget the flight (and the token it held).
                del self._flights[key]

    async def refresh(
        self, sub: str, *, rejected: str | None = None, caller: str | None = None
    ) -> AccessToken:
        """See :meth:`Keeper.refresh`."""
        if rejected is None:
            # "Refresh now": the token stored at this moment is the one to replace. Callers
            # arriving together read the same one, so they still share a single refresh.
            rejected = (await self._usable_grant(sub)).access_token
        return await self.access_token(sub, rejected=rejected, caller=caller)

    def _still_good(self, token: AccessToken, rejected: str | None) -> bool:
        margin = timedelta(seconds=self.settings.refresh_margin_seconds)
        return token.token != rejected and is_fresh(token.expires_at, self.clock.now(), margin)

    def _fresh(self, grant: Grant, rejected: str | None) -> bool:
        margin = timedelta(seconds=self.settings.refresh_margin_seconds)
        return (
            grant.access_token is not None
            and grant.access_token != rejected
            and is_fresh(grant.access_token_expires_at, self.clock.now(), margin)
        )

    async def _usable_grant(self, sub: str, client_id: str | None = None) -> Grant:
        grant = await self._store.get_grant(sub, client_id or self._parts.client_id)
        if grant is None:
            raise UnknownUser(f"No grant is stored for user {sub}.")
        if grant.status != GrantStatus.ACTIVE:
            raise GrantRevoked(grant.status_reason or grant.status, grant_status=grant.status)
        if grant.refresh_token is None:
            raise GrantRevoked(
                "no_refresh_token",
                "The user never granted offline access (no refresh token is stored).",
            )
        return grant

    async def _hand_out(
        self, grant: Grant, *, refreshed: bool, hand_out: dict[str, Any] | None
    ) -> AccessToken:
        """The stored token; one write (if any) keeps the last use (to the minute) and audits
        a service key's hand-out."""
        assert grant.access_token is not None
        assert grant.access_token_expires_at is not None
        now = self.clock.now()
        stale = grant.last_used_at is None or now - grant.last_used_at >= LAST_USED_PRECISION
        await self._store.record_hand_out(
            grant.sub, grant.client_id, used_at=now if stale else None, audit_detail=hand_out
        )
        return AccessToken(
            token=grant.access_token,
            expires_at=grant.access_token_expires_at,
            scopes=grant.scopes,
            sub=grant.sub,
            refreshed=refreshed,
        )

    async def _refresh(
        self,
        sub: str,
        client_id: str,
        rejected: str | None,
        caller: str | None,
        hand_out: dict[str, Any] | None,
        read: Grant | None,
    ) -> AccessToken:
        lease_ttl = timedelta(seconds=self.settings.refresh_lease_seconds)
        poll = 0.02
        while True:
            grant = read if read is not None else await self._usable_grant(sub, client_id)
            read = None
            if self._fresh(grant, rejected):
                return await self._hand_out(grant, refreshed=False, hand_out=hand_out)
            leased = await self._store.try_acquire_lease(
                sub, client_id, self._owner, lease_ttl, unless_cooling_down=True
            )
            if leased is None:
                await self._cooldown.check(sub, client_id)  # a failing grant: 503 at once
                # Another process holds the lease: wait for its write (or for the lease to lapse).
                await self._parts.sleep(poll)
                poll = min(poll * 1.5, 0.5)
                continue
            extensions: list[datetime] = []
            heartbeat = asyncio.create_task(self._hold_lease(sub, client_id, lease_ttl, extensions))
            token: AccessToken | None = None
            try:
                if self._fresh(leased, rejected) or leased.status != GrantStatus.ACTIVE:
                    continue  # someone finished just before us; the loop re-reads and returns
                token = await self._refresh_leased(leased, caller, hand_out)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                # A saved refresh let go of the lease in its own statement; release it here
                # otherwise, or when a heartbeat may have taken it again after that save.
                # Shielded: a cancelled caller must not keep others waiting for the lease TTL.
                if token is None or extensions:
                    await asyncio.shield(self._store.release_lease(sub, client_id, self._owner))
            if token is not None:
                return token

    async def _hold_lease(
        self, sub: str, client_id: str, ttl: timedelta, extensions: list[datetime]
    ) -> None:
        """Extend the lease while the provider call runs: a slow provider (timeouts, retries,
        Retry-After) must not let another process start a second refresh of the same grant."""
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            extensions.append(self.clock.now())
            extended = await self._store.try_acquire_lease(sub, client_id, self._owner, ttl)
            if extended is None:
                log.warning("lost the refresh lease of sub=%s while refreshing", sub)
                return

    async def _refresh_leased(
        self, grant: Grant, caller: str | None, hand_out: dict[str, Any] | None
    ) -> AccessToken | None:
        """Refresh under the lease; None means "the grant moved on, re-read it"."""
        assert grant.refresh_token is not None
        try:
            with span("grantkeeper.refresh", sub=grant.sub, caller=caller):
                tokens = await self._parts.provider().refresh(grant.refresh_token)
        except RefreshTokenRejected as error:
            await self._on_rejected(grant, error)
            return None
        except GrantkeeperError as error:
            await self._cooldown.failed(grant.sub, grant.client_id, error)
            await self._store.append_audit(
                "refresh",
                sub=grant.sub,
                client_id=grant.client_id,
                outcome=error.code,
                detail={"message": error.message},
            )
            await self.events.emit(
                GrantEvent(
                    "refresh_failed",
                    grant.sub,
                    grant.client_id,
                    self.clock.now(),
                    {"code": error.code},
                )
            )
            raise
        expires_at = access_token_expiry(tokens.expires_at, self.clock.now())
        saved = await self._store.save_refreshed(
            grant.sub,
            grant.client_id,
            grant.version,
            tokens.access_token,
            expires_at,
            tokens.refresh_token,
            self._owner,
            refresh_token_expires_at=tokens.refresh_token_expires_at,
            # One transaction: the token, its hand-out to this caller (audited under the
            # service key's name), the refresh's audit event, and the end of any cooldown.
            last_used_at=self.clock.now(),
            audit_detail={"caller": caller} if caller else {},
            hand_out_detail=hand_out,
            clear_cooldown=True,
        )
        if not saved:
            log.info("refresh of sub=%s lost a race; re-reading", grant.sub)
            return None
        await self.events.emit(
            GrantEvent("refreshed", grant.sub, grant.client_id, self.clock.now())
        )
        return AccessToken(
            token=tokens.access_token,
            expires_at=expires_at,
            scopes=grant.scopes,
            sub=grant.sub,
            refreshed=True,
        )

    async def _on_rejected(self, grant: Grant, error: RefreshTokenRejected) -> None:
        current = await self._store.get_grant(grant.sub, grant.client_id)
        if current is not None and current.version != grant.version:
            return  # a lost race, not a revocation: a sign-in or refresh wrote meanwhile
        reason = revocation_reason(
            now=self.clock.now(),
            refresh_token_expires_at=grant.refresh_token_expires_at,
            last_used=grant.last_refreshed_at or grant.last_used_at or grant.created_at,
            error_subtype=error.error_subtype,
        )
        revoked = self._parts.event("revoked", grant.sub, grant.client_id, reason=reason)
        changed = await self._store.mark_revoked(
            grant.sub,
            grant.client_id,
            reason,
            expected_version=grant.version,
            outbox=self._parts.outbox(revoked),
        )
        if not changed:
            return
        await self._store.append_audit(
            "refresh",
            sub=grant.sub,
            client_id=grant.client_id,
            outcome="grant_revoked",
            detail={"reason": reason, "provider": error.error_description},
        )
        log.warning("grant of sub=%s is dead at the provider: %s", grant.sub, reason)
        await self.events.emit(revoked)
        raise GrantRevoked(reason)
