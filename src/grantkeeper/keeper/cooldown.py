"""A cooldown per grant, shared by every instance through the store.

A refresh that failed transiently (the provider down, slow or refusing with 429/5xx) is not
tried again by every caller: until the cooldown ends, callers get ``provider_unavailable`` with
``Retry-After`` at once and Google is not called. Each consecutive failure doubles the cooldown
(``REFRESH_COOLDOWN_SECONDS``, at most ``REFRESH_COOLDOWN_MAX_SECONDS``); a success clears it
(in the transaction that saves the refreshed token).
So ten callers of one failing grant cost the provider one retry budget, not ten — the lesson of
a token broker that made ~60,000 failed refreshes a day for one connection. After
``REFRESH_FAILING_AFTER`` consecutive failures the keeper announces ``refresh_failing`` once
(a ``grant.refresh_failing`` webhook).
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from grantkeeper.errors import GrantkeeperError, ProviderUnavailable
from grantkeeper.keeper.parts import Parts
from grantkeeper.store import OutboxMessage
from grantkeeper.store.cooldowns import Cooldown

log = logging.getLogger("grantkeeper.keeper")


class RefreshCooldown:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._store = parts.store
        self._settings = parts.settings
        self._clock = parts.clock
        self._events = parts.events

    async def check(self, sub: str, client_id: str) -> None:
        """Raise ``ProviderUnavailable`` (with ``retry_after``) while the grant cools down."""
        cooldown = await self._store.get_cooldown(sub, client_id)
        if cooldown is None:
            return
        left = (cooldown.until - self._clock.now()).total_seconds()
        if left <= 0:
            return
        raise ProviderUnavailable(
            f"Refreshing this grant failed {cooldown.failures} time(s) in a row "
            f"({cooldown.last_error}); the keeper leaves the provider alone for "
            f"{math.ceil(left)} more second(s).",
            retry_after=max(1, math.ceil(left)),
            consecutive_failures=cooldown.failures,
        )

    async def failed(self, sub: str, client_id: str, error: GrantkeeperError) -> None:
        """Count a failed refresh; only transient failures start a cooldown (a dead grant is
        marked revoked instead, a configuration error needs an operator)."""
        if not error.retryable:
            return
        settings = self._settings
        failing = self._parts.event(
            "refresh_failing",
            sub,
            client_id,
            consecutive_failures=settings.refresh_failing_after,
            code=error.code,
        )

        def notify_once(cooldown: Cooldown) -> list[OutboxMessage]:
            # Written with the failure that reaches the threshold, by whichever instance counts it.
            if cooldown.failures != settings.refresh_failing_after:
                return []
            return self._parts.outbox(failing)

        cooldown = await self._store.record_refresh_failure(
            sub,
            client_id,
            error.code,
            base=timedelta(seconds=settings.refresh_cooldown_seconds),
            cap=timedelta(seconds=settings.refresh_cooldown_max_seconds),
            outbox=notify_once,
        )
        wait = max(1, math.ceil((cooldown.until - self._clock.now()).total_seconds()))
        error.extra.setdefault("retry_after", wait)
        log.warning(
            "refresh of sub=%s failed %d time(s) in a row (%s); next try in %d s",
            sub,
            cooldown.failures,
            error.code,
            wait,
        )
        if cooldown.failures == settings.refresh_failing_after:
            await self._events.emit(failing)
