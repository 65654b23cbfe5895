"""Connect the keeper's life-cycle events to webhooks and metrics.

The keeper announces every change to a grant as a
:class:`~grantkeeper.keeper.events.GrantEvent` on one bus (see its ``kind`` list); these
listeners turn them into Prometheus counts and Standard Webhooks notifications. A listener's
failure is only logged by the keeper's event bus, and a webhook is only scheduled here, so
neither can fail or slow down the operation that caused it.
"""

from __future__ import annotations

from grantkeeper import metrics
from grantkeeper.clock import Clock
from grantkeeper.keeper.events import EventBus, GrantEvent, Listener
from grantkeeper.settings import Settings
from grantkeeper.webhooks import WebhookEvent, WebhookSender

__all__ = ["attach", "metrics_listener", "webhook_listener"]


def metrics_listener(event: GrantEvent) -> None:
    """Count sign-ins and refreshes by outcome."""
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


def webhook_listener(sender: WebhookSender) -> Listener:
    """Tell the app when a grant is revoked (by the provider, a disconnect or a security event),
    disabled or active again, about to expire, or when Google reports what it must do."""

    def listen(event: GrantEvent) -> None:
        base = {"sub": event.sub, "client_id": event.client_id, "at": event.at.isoformat()}
        detail = event.detail
        if event.kind == "revoked":
            reason = detail.get("reason", "revoked")
            sender.notify(WebhookEvent.GRANT_REVOKED, **base, reason=reason, source="provider")
        elif event.kind == "disconnected":
            # Whether the provider took the revocation at once or the sweep finished it later.
            sender.notify(
                WebhookEvent.GRANT_REVOKED, **base, reason="disconnect", source="disconnect"
            )
        elif event.kind == "recovered":
            sender.notify(WebhookEvent.GRANT_RECOVERED, **base, source="sign_in")
        elif event.kind == "refresh_failing":
            sender.notify(
                WebhookEvent.REFRESH_FAILING,
                **base,
                consecutive_failures=event.detail.get("consecutive_failures"),
                code=event.detail.get("code"),
            )
        elif event.kind == "expiring":
            sender.notify(
                WebhookEvent.GRANT_EXPIRING,
                sub=event.sub,
                client_id=event.client_id,
                expires_at=detail["expires_at"],
            )
        elif event.kind == "status_changed":
            kind = (
                WebhookEvent.GRANT_RECOVERED
                if detail["status"] == "active"
                else WebhookEvent.GRANT_REVOKED
            )
            sender.notify(
                kind,
                sub=event.sub,
                client_id=event.client_id,
                status=detail["status"],
                reason=detail["reason"],
                source=detail["source"],
            )
        elif event.kind == "security_event":
            sender.notify(
                WebhookEvent.SECURITY_EVENT,
                sub=event.sub,
                event=detail["event"],
                action=detail["action"],
                reason=detail["reason"],
            )

    return listen


def attach(
    events: EventBus, settings: Settings, clock: Clock, webhooks: WebhookSender | None = None
) -> WebhookSender | None:
    """Add the metrics listener and, if configured (``GRANTKEEPER_WEBHOOK_URL``), the webhook
    listener to ``events``; returns the webhook sender (the keeper drains it on close)."""
    sender = webhooks or WebhookSender.from_settings(settings, clock=clock)
    events.add(metrics_listener)
    if sender is not None:
        events.add(webhook_listener(sender))
    return sender
