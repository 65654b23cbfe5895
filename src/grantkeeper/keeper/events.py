"""Life-cycle events the keeper announces (webhooks and metrics listen); never a token."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("grantkeeper.events")


@dataclass(frozen=True, slots=True)
class GrantEvent:
    """One change to a grant (or a failed sign-in); never carries a token. ``kind``:

    ``signed_in`` (``detail``: ``added_scopes``, ``offline``), ``sign_in_failed`` (``sub``
    empty; ``code``), ``recovered`` (a sign-in revived a dead grant), ``refreshed``,
    ``refresh_failed`` (``code``), ``revoked`` (the provider refused the refresh token;
    ``reason``), ``disconnected`` (the revocation is done, by a disconnect or by the sweep that
    completed a pending one; ``forget``, ``by``), ``expiring`` (a time-limited grant ends soon;
    ``expires_at``), ``status_changed`` (a security event moved the grant; ``status``,
    ``reason``, ``source``), ``security_event`` (Google asks the app to act; ``event``,
    ``action``, ``reason``), ``security_event_received`` (a security event was handled,
    whatever it did; ``event``, ``outcome``; ``sub`` empty when unknown), ``swept`` (a sweep
    ended; ``sub`` empty; ``statuses``: grants per stored status).
    """

    kind: str
    sub: str
    client_id: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[GrantEvent], Awaitable[None] | None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def emit(self, event: GrantEvent) -> None:
        # A listener's failure must never fail the operation that caused the event.
        for listener in self._listeners:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event listener failed on %s", event.kind)
