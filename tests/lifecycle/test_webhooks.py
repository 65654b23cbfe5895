"""Webhooks arrive signed (Standard Webhooks), are retried, and never fail their cause."""

from __future__ import annotations

import logging
import socket

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from tenacity import wait_none

from grantkeeper import metrics
from grantkeeper.errors import ConfigurationError
from grantkeeper.settings import Settings
from grantkeeper.webhooks import WebhookEvent, WebhookSender, generate_secret

from .webhook_sink import webhook_sink

pytestmark = pytest.mark.anyio

SUB = "110169484474386276334"


def _delivered(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "grantkeeper_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_notification_arrives_signed_and_verifies_with_the_reference_verifier() -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        sender = WebhookSender(sink.url, secret)
        message = sender.notify(
            WebhookEvent.GRANT_REVOKED, sub=SUB, client_id="server", reason="invalid_grant"
        )
        await sender.drain()
        (received,) = sink.wait_for(1)
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "grant.revoked"
    assert payload["data"] == {"sub": SUB, "client_id": "server", "reason": "invalid_grant"}
    assert received.headers["webhook-id"] == message.id
    assert received.headers["content-type"] == "application/json"
    # Signed with another secret, or with the body altered, it does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(received.body, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(received.body.replace(b"invalid_grant", b"x"), received.headers)


async def test_failed_deliveries_are_retried_with_the_same_id_until_accepted() -> None:
    secret = generate_secret()
    before = _delivered("delivered")
    with webhook_sink() as sink:
        sink.statuses = [500, 503]
        sender = WebhookSender(sink.url, secret, wait=wait_none())
        sender.notify(WebhookEvent.GRANT_EXPIRING, sub=SUB, expires_at="2026-01-01T00:00:00Z")
        await sender.drain()
        attempts = sink.wait_for(3)
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    for attempt in attempts:
        Webhook(secret).verify(attempt.body, attempt.headers)
    assert _delivered("delivered") == before + 1


async def test_an_unreachable_app_never_fails_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = generate_secret()
    before = _delivered("failed")
    sender = WebhookSender(f"http://127.0.0.1:{port}/gone", secret, attempts=2, wait=wait_none())
    with caplog.at_level(logging.WARNING, logger="grantkeeper.webhooks"):
        message = sender.notify(WebhookEvent.GRANT_RECOVERED, sub=SUB)  # does not raise
        await sender.drain()
    assert _delivered("failed") == before + 1
    assert message.id in caplog.text
    assert secret not in caplog.text
    assert secret.removeprefix("whsec_") not in caplog.text


def test_notify_from_synchronous_code_delivers_on_a_thread() -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        WebhookSender(sink.url, secret).notify(WebhookEvent.GRANT_REVOKED, sub=SUB)
        (received,) = sink.wait_for(1)
    assert Webhook(secret).verify(received.body, received.headers)["data"]["sub"] == SUB


def test_configuration() -> None:
    assert WebhookSender.from_settings(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError):
        WebhookSender.from_settings(
            Settings(_env_file=None, webhook_url="https://app.example/hooks")  # type: ignore[call-arg]
        )
    with pytest.raises(ConfigurationError):
        WebhookSender("https://app.example/hooks", "not-a-whsec-secret")
    sender = WebhookSender.from_settings(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            webhook_url="https://app.example/hooks",
            webhook_secret=generate_secret(),
        )
    )
    assert sender is not None
    assert "whsec" not in repr(sender)
