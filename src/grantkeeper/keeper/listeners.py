"""Connect the keeper's life-cycle events to metrics, and find the webhook sender.

The keeper announces every change to a grant as a
:class:`~grantkeeper.keeper.events.GrantEvent` on one bus (see its ``kind`` list); the metrics
listener turns them into Prometheus counts. Webhook notifications are not sent from here: they
are written to the store's outbox with the change itself (:mod:`.notifications`) and delivered
from there (:mod:`.webhook_delivery`). A listener's failure is only logged by the bus.
"""

from __future__ import annotations

from grantkeeper import metrics
from grantkeeper.clock import Clock
from grantkeeper.keeper.events import EventBus, GrantEvent
from grantkeeper.settings import Settings
from grantkeeper.webhooks import WebhookSender

__all__ = ["attach", "metrics_listener"]


def metrics_listener(event: GrantEvent) -> None:
    """Count sign-ins, refreshes and security events by outcome; a sweep's census sets the
    grants-by-state gauges."""
    if event.kind == "signed_in":
        metrics.record_sign_in("ok")
    elif event.kind == "sign_in_failed":
        metrics.record_sign_in(str(event.detail.get("code", "error")))
    elif event.kind == "refreshed":
        metrics.record_refresh("ok")
    elif event.kind == "refresh_failed":
        metrics.record_refresh(str(event.detail.get("code", "provider_error")))
    elif event.kind == "revoked":
        metrics.record_refresh("grant_revoked")
    elif event.kind == "swept":
        metrics.set_grant_counts(event.detail["statuses"])
    elif event.kind == "security_event_received":
        metrics.record_security_event(str(event.detail["event"]), str(event.detail["outcome"]))


def attach(
    events: EventBus, settings: Settings, clock: Clock, webhooks: WebhookSender | None = None
) -> WebhookSender | None:
    """Add the metrics listener to ``events``; returns the webhook sender: ``webhooks``, or the
    one ``GRANTKEEPER_WEBHOOK_URL`` configures, or None."""
    sender = webhooks or WebhookSender.from_settings(settings, clock=clock)
    events.add(metrics_listener)
    return sender
