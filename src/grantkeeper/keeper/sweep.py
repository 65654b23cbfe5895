"""The health sweep: every grant's state, and the chores that keep grants alive.

Run from cron, on one host or several at once::

    grantkeeper sweep [--json] [--keep-alive]

For each grant it decides (:func:`classify`, pure) one state:

==================  ==========================================================================
``healthy``         active, offline, refreshed recently enough
``expiring``        time-limited (``refresh_token_expires_in``) and ending within the warning
                    window; the app gets a ``grant.expiring`` webhook to ask the user again
``expired``         time-limited and past its end
``idle``            not refreshed for ``idle_after`` (Google drops refresh tokens unused for
                    six months); ``--keep-alive`` refreshes it through the keeper
``no_offline``      signed in without offline access (no refresh token)
``pending``         disconnected, but the revocation at Google has not succeeded yet: retried
``revoked`` / ``disabled`` / ``disconnected``   dead, with the stored reason
==================  ==========================================================================

Several hosts may sweep at once: a pending revocation is retried only under the grant's store
lease (compare-and-swap, expiring by itself), and a keep-alive refresh goes through
:meth:`Keeper.access_token`, which is single-flight across processes. The worst a race can
cause is a second ``grant.expiring`` notification.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from grantkeeper import metrics
from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper.decisions import FORGET_AFTER_REVOCATION
from grantkeeper.store import Grant, GrantRef, GrantStatus, GrantStore
from grantkeeper.webhooks import WebhookEvent, WebhookSender

if TYPE_CHECKING:
    from grantkeeper.keeper.core import Keeper

__all__ = [
    "GrantHealth",
    "GrantReport",
    "SweepOptions",
    "SweepReport",
    "classify",
    "sweep",
]

log = logging.getLogger(__name__)

AUDIT_KIND = "sweep"


class GrantHealth(StrEnum):
    HEALTHY = "healthy"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    IDLE = "idle"
    NO_OFFLINE = "no_offline"
    PENDING = "pending"
    REVOKED = "revoked"
    DISABLED = "disabled"
    DISCONNECTED = "disconnected"
    UNDECRYPTABLE = "undecryptable"
    """Its tokens were sealed with a key the ring lacks (see ``grantkeeper keys status``)."""


@dataclass(frozen=True, slots=True)
class SweepOptions:
    idle_after: timedelta = timedelta(days=90)
    """Refresh (``--keep-alive``) grants idle this long; Google's limit is six months."""
    expiring_within: timedelta = timedelta(days=3)
    """Warn about time-limited grants ending within this window."""
    keep_alive: bool = False
    lease: timedelta = timedelta(seconds=60)
    """How long a host holds a grant while retrying its revocation."""


@dataclass(frozen=True, slots=True)
class GrantReport:
    sub: str
    client_id: str
    state: GrantHealth
    reason: str | None = None
    last_active: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    action: str | None = None
    """What this sweep did: ``kept_alive``, ``keep_alive_failed``, ``revocation_completed``,
    ``revocation_still_pending``, ``notified``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "client_id": self.client_id,
            "state": str(self.state),
            "reason": self.reason,
            "last_active": self.last_active.isoformat() if self.last_active else None,
            "refresh_token_expires_at": (
                self.refresh_token_expires_at.isoformat() if self.refresh_token_expires_at else None
            ),
            "action": self.action,
        }


@dataclass(frozen=True, slots=True)
class SweepReport:
    at: datetime
    grants: list[GrantReport] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(str(g.state) for g in self.grants)
        return {str(state): found.get(str(state), 0) for state in GrantHealth}

    @property
    def actions(self) -> dict[str, int]:
        return dict(Counter(g.action for g in self.grants if g.action))

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "total": len(self.grants),
            "counts": self.counts,
            "actions": self.actions,
            "grants": [g.to_json() for g in self.grants],
        }


def last_active(grant: Grant) -> datetime:
    """When the grant last showed life: its last refresh, or the last sign-in or change
    (``updated_at``; handing out a cached access token does not count, as it does not use the
    refresh token Google's idle rule is about)."""
    candidates = [grant.created_at, grant.updated_at, grant.last_refreshed_at]
    return max(when for when in candidates if when is not None)


def classify(grant: Grant, now: datetime, options: SweepOptions) -> GrantHealth:
    """The grant's state (pure)."""
    dead = {
        GrantStatus.PENDING_REVOCATION.value: GrantHealth.PENDING,
        GrantStatus.REVOKED.value: GrantHealth.REVOKED,
        GrantStatus.DISABLED.value: GrantHealth.DISABLED,
        GrantStatus.DISCONNECTED.value: GrantHealth.DISCONNECTED,
    }
    if grant.status in dead:
        return dead[grant.status]
    if grant.refresh_token is None:
        return GrantHealth.NO_OFFLINE
    ends = grant.refresh_token_expires_at
    if ends is not None and ends <= now:
        return GrantHealth.EXPIRED
    if ends is not None and ends - now <= options.expiring_within:
        return GrantHealth.EXPIRING
    if now - last_active(grant) >= options.idle_after:
        return GrantHealth.IDLE
    return GrantHealth.HEALTHY


async def sweep(
    store: GrantStore,
    *,
    now: datetime,
    options: SweepOptions | None = None,
    keeper: Keeper | None = None,
    webhooks: WebhookSender | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SweepReport:
    """Classify every grant; retry pending revocations and (with ``keep_alive``) refresh idle
    grants through ``keeper``; notify about expiring grants. Without a keeper (no client
    secrets configured) only the report is made. ``on_progress`` hears how many grants each
    page held, once the page is done."""
    options = options or SweepOptions()
    owner = f"sweep-{secrets.token_hex(6)}"
    reports: list[GrantReport] = []
    async for page in store.iter_grants():
        for grant in page:
            if isinstance(grant, GrantRef):
                reports.append(
                    GrantReport(
                        sub=grant.sub,
                        client_id=grant.client_id,
                        state=GrantHealth.UNDECRYPTABLE,
                        reason="token_undecryptable",
                    )
                )
            else:
                reports.append(
                    await _sweep_one(store, grant, now, options, keeper, webhooks, owner)
                )
        if on_progress is not None:
            on_progress(len(page))
    report = SweepReport(at=now, grants=reports)
    metrics.set_grant_counts(await store.count_by_status())
    await store.append_audit(
        AUDIT_KIND, outcome="ok", detail={"counts": report.counts, "actions": report.actions}
    )
    return report


async def _sweep_one(
    store: GrantStore,
    grant: Grant,
    now: datetime,
    options: SweepOptions,
    keeper: Keeper | None,
    webhooks: WebhookSender | None,
    owner: str,
) -> GrantReport:
    state = classify(grant, now, options)
    action: str | None = None
    if state is GrantHealth.PENDING and keeper is not None:
        action = await _retry_revocation(store, keeper, grant, owner, options.lease)
        if action == "revocation_completed":
            state = GrantHealth.DISCONNECTED
    elif state is GrantHealth.IDLE and options.keep_alive and keeper is not None:
        action = await _keep_alive(keeper, grant)
        if action == "kept_alive":
            state = GrantHealth.HEALTHY
    elif state is GrantHealth.EXPIRING and webhooks is not None:
        webhooks.notify(
            WebhookEvent.GRANT_EXPIRING,
            sub=grant.sub,
            client_id=grant.client_id,
            expires_at=grant.refresh_token_expires_at,
        )
        action = "notified"
    return GrantReport(
        sub=grant.sub,
        client_id=grant.client_id,
        state=state,
        reason=grant.status_reason,
        last_active=last_active(grant),
        refresh_token_expires_at=grant.refresh_token_expires_at,
        action=action,
    )


async def _retry_revocation(
    store: GrantStore, keeper: Keeper, grant: Grant, owner: str, lease: timedelta
) -> str | None:
    leased = await store.try_acquire_lease(grant.sub, grant.client_id, owner, lease)
    if leased is None:
        return None  # another host is on it
    try:
        if leased.status != GrantStatus.PENDING_REVOCATION:
            return None
        token = leased.refresh_token or leased.access_token
        if token is not None:
            try:
                await keeper.provider.revoke(token)
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
        # erase_tokens clears the lease too.
        await store.erase_tokens(
            grant.sub, grant.client_id, status=GrantStatus.DISCONNECTED, reason="disconnect"
        )
        await store.append_audit(
            "disconnect",
            sub=grant.sub,
            client_id=grant.client_id,
            outcome="revoked",
            detail={"by": "sweep"},
        )
        if leased.status_reason == FORGET_AFTER_REVOCATION:
            await store.forget_user(grant.sub)
            await store.append_audit("forget", sub=grant.sub, outcome="ok", detail={"by": "sweep"})
        return "revocation_completed"
    finally:
        await store.release_lease(grant.sub, grant.client_id, owner)


async def _keep_alive(keeper: Keeper, grant: Grant) -> str:
    try:
        # A token that is stale after months idle: this is a refresh at the provider.
        await keeper.access_token(grant.sub)
    except GrantkeeperError as error:
        log.info("keep-alive of %s failed: %s", grant.sub, error.code)
        return "keep_alive_failed"
    return "kept_alive"
