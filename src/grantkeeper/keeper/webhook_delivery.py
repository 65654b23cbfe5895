"""Delivering the webhook outbox: at least once, with backoff, across restarts and instances.

A deliverer claims due messages from the store with a lease (:mod:`grantkeeper.store.webhook_outbox`
explains why two deliverers never hold one message at once), POSTs each with the Standard
Webhooks headers (the message's ``id`` is the ``webhook-id`` of every attempt), and records the
outcome: a 2xx marks it ``delivered``; anything else schedules the next attempt after an
exponential backoff with jitter, and after ``GRANTKEEPER_WEBHOOK_MAX_ATTEMPTS`` attempts marks it
``failed`` (``grantkeeper webhooks replay`` sends it again). A deliverer that dies mid-POST
leaves its claim to lapse; the message is then claimed again, so the app may receive it twice
and de-duplicates by ``webhook-id``. A claim counts as an attempt, so a message whose every
deliverer dies still ends ``failed`` after its attempts.

One runs in every ``grantkeeper serve`` worker process, on a :class:`SyncKeeper`'s loop, and in
``grantkeeper webhooks deliver``; the claim lets any number run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from grantkeeper import metrics
from grantkeeper.clock import Clock
from grantkeeper.errors import GrantkeeperError
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore, OutboxEntry
from grantkeeper.webhooks import WebhookSender

__all__ = ["DeliveryPolicy", "DeliveryReport", "WebhookDeliverer", "backoff"]

log = logging.getLogger("grantkeeper.webhooks")

#: How long the loop sleeps when nothing is due and nothing wakes it (another process may have
#: written messages; their own deliverer usually sends them first).
IDLE_POLL_SECONDS = 5.0
#: How often a running deliverer deletes delivered messages past their retention.
PRUNE_EVERY = timedelta(hours=1)
#: How long before its claim lapses an attempt is given up (its outcome must still be written).
LEASE_MARGIN_SECONDS = 5.0
#: The shortest sleep between passes (a due message another deliverer holds is not spun on).
MIN_POLL_SECONDS = 0.5
#: How long the loop waits before trying again after the store failed.
STORE_RETRY_SECONDS = 5.0

Wait = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int = 12
    first_retry: timedelta = timedelta(seconds=60)
    max_retry: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(seconds=35)
    """How long a claim holds a message: well beyond what one POST may take (its timeout)."""
    batch: int = 20
    retention: timedelta | None = timedelta(days=7)
    """Delivered messages older than this are deleted (None: kept)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> DeliveryPolicy:
        return cls(
            max_attempts=settings.webhook_max_attempts,
            first_retry=timedelta(seconds=settings.webhook_retry_seconds),
            max_retry=timedelta(seconds=settings.webhook_retry_max_seconds),
            lease=timedelta(seconds=3 * timeout + 5),
            retention=(
                timedelta(days=settings.webhook_retention_days)
                if settings.webhook_retention_days
                else None
            ),
        )


def backoff(attempts: int, policy: DeliveryPolicy, rng: random.Random) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: doubling from ``first_retry``, at
    most ``max_retry``, times a jitter in [0.75, 1.25) so a receiver that was down is not hit
    by every message in the same second when it returns."""
    doubling: int = 2 ** min(max(attempts - 1, 0), 30)
    wait: timedelta = policy.first_retry * doubling * rng.uniform(0.75, 1.25)
    return min(policy.max_retry, wait)


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed


class WebhookDeliverer:
    """Delivers a store's outbox through ``sender``.

    Args:
        store: the grant store holding the outbox.
        sender: signs and POSTs (its URL, secret, timeout and transport).
        clock: when attempts are due (tests advance it instead of sleeping).
        policy: attempts, backoff and lease.
        wait: how the loop sleeps when nothing is due (tests pass one that returns at once).
        rng: the jitter's source.
    """

    def __init__(
        self,
        store: GrantStore,
        sender: WebhookSender,
        *,
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        wait: Wait = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._policy = policy or DeliveryPolicy()
        self._wait = wait
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not a secret
        self.owner = f"deliverer-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._pruned_at: datetime | None = None

    def wake(self) -> None:
        """Something was written to the outbox: deliver now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """End :meth:`run` after the pass in progress (its claims end properly)."""
        self._stopping = True
        self._wake.set()

    async def deliver_due(self) -> DeliveryReport:
        """Deliver every message due now (one attempt each), batch after batch, until none is
        left that this deliverer can claim."""
        report = DeliveryReport()
        async with self._sender.client() as client:
            while True:
                claimed = await self._store.claim_webhooks(
                    self.owner,
                    self._policy.lease,
                    self._policy.batch,
                    max_attempts=self._policy.max_attempts,
                )
                if not claimed:
                    break
                outcomes = await asyncio.gather(
                    *(self._attempt(client, m, report) for m in claimed), return_exceptions=True
                )
                # One message's failure (the store refusing its outcome) must not orphan the
                # others' attempts: each is logged; its claim lapses and it is tried again.
                for message, outcome in zip(claimed, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        if isinstance(outcome, asyncio.CancelledError):
                            raise outcome
                        log.error(
                            "webhook %s (%s): recording the attempt failed: %s",
                            message.id,
                            message.type,
                            type(outcome).__name__,
                        )
        await self._prune_now_and_then()
        return report

    async def _prune_now_and_then(self) -> None:
        # Here rather than in run() alone: the worker's webhooks job and `webhooks deliver
        # --once` only call deliver_due, and the table must not grow without end there either.
        now = self._clock.now()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await self.prune()

    async def _attempt(
        self, client: httpx.AsyncClient, message: OutboxEntry, report: DeliveryReport
    ) -> None:
        error = await self._post_within_lease(client, message)
        if error is None:
            await self._store.finish_webhook(message.id, self.owner, delivered=True)
            metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
            report.delivered += 1
            return
        if message.attempts >= self._policy.max_attempts:
            await self._store.finish_webhook(message.id, self.owner, delivered=False, error=error)
            metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            report.failed += 1
            log.warning(
                "webhook %s (%s) failed after %d attempts: %s; `grantkeeper webhooks replay %s` "
                "sends it again",
                message.id,
                message.type,
                message.attempts,
                error,
                message.id,
            )
            return
        wait = backoff(message.attempts, self._policy, self._rng)
        await self._store.finish_webhook(
            message.id,
            self.owner,
            delivered=False,
            error=error,
            retry_at=self._clock.now() + wait,
        )
        metrics.WEBHOOK_DELIVERIES.labels(outcome="retried").inc()
        report.retried += 1
        log.info(
            "webhook %s (%s) attempt %d failed: %s; next in %d s",
            message.id,
            message.type,
            message.attempts,
            error,
            int(wait.total_seconds()),
        )

    async def _post_within_lease(
        self, client: httpx.AsyncClient, message: OutboxEntry
    ) -> str | None:
        # httpx's timeout is per phase (connect, each read, …): a receiver trickling its answer
        # could hold one POST past the claim, and another deliverer would send it meanwhile.
        limit = max(self._policy.lease.total_seconds() - LEASE_MARGIN_SECONDS, 1.0)
        try:
            async with asyncio.timeout(limit):
                return await self._sender.post(client, message.id, message.body)
        except TimeoutError:
            return f"no answer within {limit:g} s"

    async def prune(self) -> int:
        """Delete the delivered messages older than the retention (none without one)."""
        if self._policy.retention is None:
            return 0
        pruned = await self._store.prune_webhooks(self._clock.now() - self._policy.retention)
        if pruned:
            log.info("webhooks: %d delivered notification(s) past retention deleted", pruned)
        return pruned

    async def run(self) -> None:
        """Deliver until cancelled: whatever is due, then sleep until woken (a message was
        written here), until the next message is due, or :data:`IDLE_POLL_SECONDS`."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.deliver_due()
                pause = await self._pause()
            except GrantkeeperError as error:  # the store is down: try again later
                log.warning("webhook delivery paused: %s", error.code)
                pause = STORE_RETRY_SECONDS
            except Exception:
                log.exception("webhook delivery pass crashed; trying again")
                pause = STORE_RETRY_SECONDS
            if not self._wake.is_set():
                sleeping = asyncio.ensure_future(self._wait(pause))
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (sleeping, woken):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task

    async def _pause(self) -> float:
        due = await self._store.next_webhook_due()
        if due is None:
            return IDLE_POLL_SECONDS
        left = (due - self._clock.now()).total_seconds()
        # Due but not claimed: another deliverer holds it; look again shortly.
        return min(IDLE_POLL_SECONDS, max(left, MIN_POLL_SECONDS))
