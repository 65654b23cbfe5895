"""The health sweep: every grant's state, and the chores that keep grants alive.

Run from cron, on one host or several at once::

    grantkeeper sweep [--json] [--keep-alive]      # or: await keeper.sweep(options)

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
lease (compare-and-swap, expiring by itself) along the same path as a disconnect (so its
completion announces ``disconnected`` and the ``grant.revoked`` webhook fires), and a
keep-alive refresh is the keeper's single-flight refresh. The worst a race can cause is a
second ``grant.expiring`` notification.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper.offline import OfflineAccess
from grantkeeper.keeper.parts import Parts
from grantkeeper.keeper.results import iso_utc
from grantkeeper.keeper.revocation import Revocations
from grantkeeper.store import Grant, GrantRef, GrantStatus

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
#: Grants read (and held in memory) at a time; two pages are in flight at once.
PAGE_SIZE = 500


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
    concurrency: int = 32
    """Grants worked on at once: a retried revocation or a keep-alive refresh waits on
    Google, so a nightly keep-alive of 10,000 grants takes minutes, not hours."""
    report_rows: int = 1000
    """Grants the report lists by name (healthy ones while it lists fewer than this, the
    others up to as many again); the counts cover every grant. So a sweep's memory does not
    grow with the store."""


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
    ``revocation_still_pending``, ``revocation_superseded``, ``notified``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "client_id": self.client_id,
            "state": str(self.state),
            "reason": self.reason,
            "last_active": iso_utc(self.last_active),
            "refresh_token_expires_at": iso_utc(self.refresh_token_expires_at),
            "action": self.action,
        }


@dataclass(slots=True)
class SweepReport:
    at: datetime
    grants: list[GrantReport] = field(default_factory=list)
    """The grants listed by name (see :attr:`SweepOptions.report_rows`); ``total`` and the
    counts cover all of them."""
    total: int = 0
    omitted: int = 0
    """Grants counted but not listed."""
    _states: Counter[str] = field(default_factory=Counter)
    _actions: Counter[str] = field(default_factory=Counter)
    _listed_healthy: int = 0
    _listed_other: int = 0

    def add(self, row: GrantReport, rows: int) -> None:
        """Count ``row``; list it if fewer than ``rows`` of its kind (healthy, or anything
        else) are listed."""
        self.total += 1
        self._states[str(row.state)] += 1
        if row.action:
            self._actions[row.action] += 1
        if row.state is GrantHealth.HEALTHY and row.action is None:
            listed = self._listed_healthy < rows
            self._listed_healthy += listed
        else:
            listed = self._listed_other < rows
            self._listed_other += listed
        if listed:
            self.grants.append(row)
        else:
            self.omitted += 1

    @property
    def counts(self) -> dict[str, int]:
        return {str(state): self._states.get(str(state), 0) for state in GrantHealth}

    @property
    def actions(self) -> dict[str, int]:
        return dict(self._actions)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso_utc(self.at),
            "total": self.total,
            "counts": self.counts,
            "actions": self.actions,
            "grants": [g.to_json() for g in self.grants],
            "omitted": self.omitted,
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
    parts: Parts,
    *,
    options: SweepOptions | None = None,
    revocations: Revocations | None = None,
    offline: OfflineAccess | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SweepReport:
    """Classify every grant; retry pending revocations (``revocations``) and, with
    ``keep_alive``, refresh idle grants (``offline``); announce expiring grants. Without
    ``revocations`` (no client secrets configured) only the report is made. ``on_progress``
    hears how many grants each page held, once the page is done."""
    options = options or SweepOptions()
    owner = f"sweep-{secrets.token_hex(6)}"
    now = parts.clock.now()
    report = SweepReport(at=now)
    chores = _Chores(parts, options, revocations, offline, owner)
    room = asyncio.Semaphore(max(1, options.concurrency))

    async def one(grant: Grant | GrantRef) -> GrantReport:
        if isinstance(grant, GrantRef):
            return GrantReport(
                sub=grant.sub,
                client_id=grant.client_id,
                state=GrantHealth.UNDECRYPTABLE,
                reason="token_undecryptable",
            )
        async with room:
            return await chores.sweep_one(grant, now)

    async def finish(page: list[asyncio.Task[GrantReport]]) -> None:
        rows = await asyncio.gather(*page)
        for row in rows:
            report.add(row, options.report_rows)
        if on_progress is not None:
            on_progress(len(rows))

    # A page's grants run concurrently and are reported in page order. The next page is read
    # and started while the previous one finishes, so the slots of ``concurrency`` do not sit
    # empty while a page drains (at 50 ms a refresh, that gap cost a bulk refresh a quarter of
    # its time); memory stays two pages.
    pages: list[list[asyncio.Task[GrantReport]]] = []
    try:
        async for page in parts.store.iter_grants(PAGE_SIZE):
            pages.append([asyncio.ensure_future(one(grant)) for grant in page])
            if len(pages) == 2:
                await finish(pages[0])
                del pages[0]
        while pages:
            await finish(pages[0])
            del pages[0]
    finally:
        # A grant that failed (or a cancelled sweep) stops every other grant still running:
        # none may go on refreshing or revoking after the sweep has returned.
        running = [task for page in pages for task in page if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for task in (task for page in pages for task in page):
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the sweep raises its own first failure
    await parts.store.append_audit(
        AUDIT_KIND, outcome="ok", detail={"counts": report.counts, "actions": report.actions}
    )
    # Grants per stored status, for the gauges of a process that does not scrape the store.
    await parts.emit("swept", "", "", statuses=await parts.store.count_by_status())
    return report


@dataclass(frozen=True, slots=True)
class _Chores:
    parts: Parts
    options: SweepOptions
    revocations: Revocations | None
    offline: OfflineAccess | None
    owner: str

    async def sweep_one(self, grant: Grant, now: datetime) -> GrantReport:
        state = classify(grant, now, self.options)
        action: str | None = None
        if state is GrantHealth.PENDING and self.revocations is not None:
            action = await self.revocations.retry_pending(grant, self.owner, self.options.lease)
            if action == "revocation_completed":
                state = GrantHealth.DISCONNECTED
        elif state is GrantHealth.IDLE and self.options.keep_alive and self.offline is not None:
            action = await _keep_alive(self.offline, grant)
            if action == "kept_alive":
                state = GrantHealth.HEALTHY
        elif state is GrantHealth.EXPIRING and self.revocations is not None:
            expires_at = grant.refresh_token_expires_at
            assert expires_at is not None
            expiring = self.parts.event(
                "expiring", grant.sub, grant.client_id, expires_at=expires_at
            )
            # Once per grant and expiry: the message id is fixed, a sweep finding it again
            # (this host's next one, another host's) writes nothing.
            await self.parts.store.enqueue_webhooks(self.parts.outbox(expiring), keep_existing=True)
            await self.parts.events.emit(expiring)
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


async def _keep_alive(offline: OfflineAccess, grant: Grant) -> str:
    try:
        # A token that is stale after months idle: this is a refresh at the provider.
        await offline.access_token(grant.sub)
    except GrantkeeperError as error:
        log.info("keep-alive of %s failed: %s", grant.sub, error.code)
        return "keep_alive_failed"
    return "kept_alive"
