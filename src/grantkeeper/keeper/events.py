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
    """``kind`` is one of ``signed_in``, ``sign_in_failed`` (``sub`` empty, ``detail.code``),
    ``recovered``, ``refreshed``, ``refresh_failed``, ``revoked``, ``disconnected``."""

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
