"""Which webhook notifications a grant event makes, as outbox messages (pure).

A part that changes a grant builds the :class:`GrantEvent` first, hands the messages made from
it to the store write that makes the change (so they are committed with it, or not at all),
and announces the event once the write is done. Events the app is not told about (a sign-in, a
refresh) make no message.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from grantkeeper.keeper.events import GrantEvent
from grantkeeper.keeper.results import iso_utc
from grantkeeper.store import OutboxMessage
from grantkeeper.webhooks import WebhookEvent, build_message

__all__ = ["NOTIFYING_KINDS", "webhook_messages"]

#: The event kinds that make a notification.
NOTIFYING_KINDS = frozenset(
    {"revoked", "disconnected", "recovered", "refresh_failing", "expiring", "status_changed",
     "security_event"}
)  # fmt: skip


def _payloads(event: GrantEvent) -> list[tuple[WebhookEvent, dict[str, Any]]]:
    base = {"sub": event.sub, "client_id": event.client_id, "at": iso_utc(event.at)}
    detail = event.detail
    if event.kind == "revoked":
        reason = detail.get("reason", "revoked")
        return [(WebhookEvent.GRANT_REVOKED, {**base, "reason": reason, "source": "provider"})]
    if event.kind == "disconnected":
        # Whether the provider took the revocation at once or the sweep finished it later.
        return [
            (WebhookEvent.GRANT_REVOKED, {**base, "reason": "disconnect", "source": "disconnect"})
        ]
    if event.kind == "recovered":
        return [(WebhookEvent.GRANT_RECOVERED, {**base, "source": "sign_in"})]
    if event.kind == "refresh_failing":
        return [
            (
                WebhookEvent.REFRESH_FAILING,
                {
                    **base,
                    "consecutive_failures": detail.get("consecutive_failures"),
                    "code": detail.get("code"),
                },
            )
        ]
    if event.kind == "expiring":
        expires_at = detail["expires_at"]
        assert isinstance(expires_at, datetime)
        data = {"sub": event.sub, "client_id": event.client_id, "expires_at": iso_utc(expires_at)}
        return [(WebhookEvent.GRANT_EXPIRING, data)]
    if event.kind == "status_changed":
        kind = (
            WebhookEvent.GRANT_RECOVERED
            if detail["status"] == "active"
            else WebhookEvent.GRANT_REVOKED
        )
        data = {
            "sub": event.sub,
            "client_id": event.client_id,
            "status": detail["status"],
            "reason": detail["reason"],
            "source": detail["source"],
        }
        return [(kind, data)]
    if event.kind == "security_event":
        data = {
            "sub": event.sub,
            "event": detail["event"],
            "action": detail["action"],
            "reason": detail["reason"],
        }
        return [(WebhookEvent.SECURITY_EVENT, data)]
    return []  # not in NOTIFYING_KINDS


def webhook_messages(event: GrantEvent) -> list[OutboxMessage]:
    """The notifications ``event`` makes (none for most events); never a token."""
    found = []
    for kind, data in _payloads(event):
        message = build_message(kind, data, at=event.at, id=_fixed_id(event))
        found.append(OutboxMessage(message.id, message.type, message.body, message.created_at))
    return found


def _fixed_id(event: GrantEvent) -> str | None:
    """The ``webhook-id`` of a notice that is due once per fact rather than per change: every
    sweep, on every host, finds an expiring grant again, and writes the one notice of that grant
    and expiry (the outbox keeps the first, so the app hears it once). None: a fresh id."""
    if event.kind != "expiring":
        return None
    fact = f"{event.sub}\0{event.client_id}\0{iso_utc(event.detail['expires_at'])}"
    return "msg_expiring_" + hashlib.sha256(fact.encode()).hexdigest()[:24]
