"""What every part of the keeper works with: the store, the provider (built on first need), the
clock and the event bus, plus the settings. Parts are given these, never the keeper itself, so
no part can reach around another and every change to a grant is announced on one bus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from grantkeeper.clock import Clock
from grantkeeper.keeper.events import EventBus, GrantEvent
from grantkeeper.keeper.notifications import webhook_messages
from grantkeeper.oauth import OAuthProvider
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore, OutboxMessage

#: How a part waits between polls of the store (tests pass one that does not sleep).
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Parts:
    store: GrantStore
    provider: Callable[[], OAuthProvider]
    """The provider client, built from the settings the first time a part needs it (read-only
    work never does, so it runs without client secrets)."""
    clock: Clock
    events: EventBus
    settings: Settings
    owner: str
    """This keeper's name in the store's leases."""
    sleep: Sleep = asyncio.sleep
    webhooks: bool = False
    """Whether the app is notified (a webhook sender is configured): changes then write their
    notifications to the store's outbox in their own transaction."""

    @property
    def client_id(self) -> str:
        """The server (web) client id: the grant's holder and the ID token's ``aud``."""
        return self.provider().client_secrets.client_id

    def event(self, kind: str, sub: str, client_id: str, **detail: object) -> GrantEvent:
        """An event stamped now, to write its notifications with the change and emit after."""
        return GrantEvent(kind, sub, client_id, self.clock.now(), dict(detail))

    def outbox(self, *events: GrantEvent) -> list[OutboxMessage]:
        """The notifications to write with the change that ``events`` announce (none when no
        webhook is configured)."""
        if not self.webhooks:
            return []
        return [message for event in events for message in webhook_messages(event)]

    async def emit(self, kind: str, sub: str, client_id: str, **detail: object) -> None:
        await self.events.emit(self.event(kind, sub, client_id, **detail))
