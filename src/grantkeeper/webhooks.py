"""Grant life-cycle notifications to the app, signed with the Standard Webhooks scheme.

When a grant is revoked, recovers (the user signed in again), or a time-limited grant is about
to expire, grantkeeper POSTs a small JSON document to ``GRANTKEEPER_WEBHOOK_URL``::

    {"type": "grant.revoked", "timestamp": "2026-05-01T12:00:00Z",
     "data": {"sub": "1101…", "client_id": "….apps.googleusercontent.com", "reason": "…"}}

with the three Standard Webhooks headers (https://www.standardwebhooks.com/): ``webhook-id``
(the same on every retry of one message, so the receiver can de-duplicate), ``webhook-timestamp``
(seconds, of this attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
id.timestamp.body>`` keyed with the ``whsec_`` secret). The signature is computed by the
``standardwebhooks`` reference library, so any of its verifiers accept it.

The keeper does not send from memory: each notification is written to the store's outbox in
the transaction of the grant change that causes it, and a deliverer
(:mod:`grantkeeper.keeper.webhook_delivery`) sends it from there with :meth:`WebhookSender.post`,
at least once, across restarts and instances. :meth:`WebhookSender.notify` remains for sending
a one-off notification from memory (retried with tenacity, lost if the process dies). A webhook
never blocks or fails the operation that caused it. No token is ever part of a payload.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from standardwebhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from grantkeeper import metrics
from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import ConfigurationError
from grantkeeper.outbound_tls import verified_context

__all__ = [
    "WebhookEvent",
    "WebhookMessage",
    "WebhookSender",
    "build_message",
    "generate_secret",
    "signed_headers",
]

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "grantkeeper-webhooks"


class WebhookEvent(StrEnum):
    """The ``type`` of a notification."""

    GRANT_REVOKED = "grant.revoked"
    """The grant can no longer mint tokens (provider refusal, RISC event, disconnect)."""
    GRANT_RECOVERED = "grant.recovered"
    """A revoked or disabled grant is usable again (the user signed in again, account enabled)."""
    GRANT_EXPIRING = "grant.expiring"
    """A time-limited grant (``refresh_token_expires_in``) ends soon; ask the user again."""
    REFRESH_FAILING = "grant.refresh_failing"
    """The grant's refreshes keep failing (the provider or the network): the keeper backs off;
    the app may want to tell the user or an operator."""
    SECURITY_EVENT = "grant.security_event"
    """Google reported a security event the app must act on (e.g. end the user's sessions)."""


#: What each event means for the app (``grantkeeper webhooks events``, docs/webhooks.md).
EVENT_MEANINGS: Mapping[str, str] = {
    WebhookEvent.GRANT_REVOKED: "The grant can no longer mint tokens (provider refusal, RISC "
    "event, disconnect): stop offline work for the user; they must sign in again.",
    WebhookEvent.GRANT_RECOVERED: "A revoked or disabled grant is usable again (the user signed "
    "in again, the account was re-enabled).",
    WebhookEvent.GRANT_EXPIRING: "A time-limited grant (refresh_token_expires_in) ends soon: ask "
    "the user to sign in again.",
    WebhookEvent.REFRESH_FAILING: "The grant's refreshes keep failing (the provider or the "
    "network) and the keeper is backing off: tell the user or an operator if it lasts.",
    WebhookEvent.SECURITY_EVENT: "Google reported a security event the app must act on (e.g. "
    "end the user's sessions).",
}


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One notification; ``id`` stays the same across retries."""

    id: str
    type: str
    body: str
    created_at: datetime = field(compare=False)


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks form ``whsec_<base64 of 32 bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def build_message(
    event: WebhookEvent | str, data: Mapping[str, Any], *, at: datetime, id: str | None = None
) -> WebhookMessage:
    """The JSON payload for ``event`` (pure; ``data`` must hold no secret). ``id``: the
    message's ``webhook-id`` when it must be the same for every writer (a random one else)."""
    body = json.dumps(
        {
            "type": str(event),
            "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": dict(data),
        },
        separators=(",", ":"),
        sort_keys=True,
        default=str,
    )
    return WebhookMessage(
        id=id or "msg_" + secrets.token_urlsafe(18), type=str(event), body=body, created_at=at
    )


def signed_headers(signer: Webhook, message: WebhookMessage, *, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one delivery attempt made at ``at``."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message.id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(message.id, at, message.body),
    }


def _load_signer(secret: str) -> Webhook:
    # The library accepts any base64; insist on the prefixed form so a secret pasted into the
    # wrong variable (an API key, a URL) is caught at start-up rather than signing with garbage.
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigurationError(
            "GRANTKEEPER_WEBHOOK_SECRET must start with 'whsec_' "
            "(generate one with: grantkeeper webhooks secret)."
        )
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ConfigurationError("GRANTKEEPER_WEBHOOK_SECRET is not whsec_<base64>.") from None
    if len(raw) < 24:
        raise ConfigurationError("GRANTKEEPER_WEBHOOK_SECRET must hold at least 24 random bytes.")
    return Webhook(raw)


class _DeliveryFailed(Exception):
    """A non-2xx answer; retried like a network error."""


class WebhookSender:
    """Signs and delivers notifications in the background.

    Args:
        url: The app's endpoint.
        secret: ``whsec_…`` signing secret.
        clock: Stamps payloads and attempts.
        attempts: Deliveries tried per message before giving up.
        wait: Backoff between attempts (tenacity wait strategy); exponential with jitter.
        timeout: Seconds per attempt.
        transport: An httpx transport (tests and embedding); default a real connection.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        attempts: int = 6,
        wait: wait_base | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._signer = _load_signer(secret)
        self._clock = clock
        self._attempts = attempts
        self._wait = wait or wait_exponential_jitter(initial=1, max=300, jitter=1)
        self._timeout = timeout
        self._transport = transport
        self._pending: set[asyncio.Future[bool]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebhookSender(url={self.url!r})"

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Clock = SYSTEM_CLOCK) -> WebhookSender | None:
        """The configured sender, or None when no ``GRANTKEEPER_WEBHOOK_URL`` is set."""
        url: str | None = getattr(settings, "webhook_url", None)
        if not url:
            return None
        secret: str | None = getattr(settings, "webhook_secret", None)
        if not secret:
            raise ConfigurationError(
                "GRANTKEEPER_WEBHOOK_URL is set but GRANTKEEPER_WEBHOOK_SECRET is not; "
                "generate one with: grantkeeper webhooks secret"
            )
        timeout = float(getattr(settings, "webhook_timeout_seconds", 10.0))
        return cls(url, secret, clock=clock, timeout=timeout)

    def notify(self, event: WebhookEvent | str, /, **data: Any) -> WebhookMessage:
        """Schedule a notification and return at once; never raises for delivery problems.

        Inside an event loop the delivery is a task on that loop; from synchronous code it
        runs on a daemon thread.
        """
        message = build_message(event, data, at=self._clock.now())
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            thread = threading.Thread(
                target=asyncio.run, args=(self.deliver(message),), daemon=True
            )
            thread.start()
            return message
        task = loop.create_task(self.deliver(message))
        with self._lock:
            self._pending.add(task)
        task.add_done_callback(self._forget)
        return message

    def _forget(self, task: asyncio.Future[bool]) -> None:
        with self._lock:
            self._pending.discard(task)

    async def drain(self) -> None:
        """Wait for the deliveries scheduled on this loop (shutdown, tests); bound it with
        ``asyncio.timeout`` if needed."""
        with self._lock:
            pending = [task for task in self._pending if not task.done()]
        if pending:
            await asyncio.wait(pending)

    async def deliver(self, message: WebhookMessage) -> bool:
        """Deliver one message with retries; True once the app answered 2xx."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type((httpx.TransportError, _DeliveryFailed)),
            reraise=False,
        )
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport, follow_redirects=False
            ) as client:
                async for attempt in retrying:
                    with attempt:
                        await self._attempt(client, message)
        except RetryError as gave_up:
            cause = gave_up.last_attempt.exception()
            log.warning(
                "webhook %s (%s) not delivered after %d attempts: %s",
                message.id,
                message.type,
                self._attempts,
                _describe(cause),
            )
            metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            return False
        except Exception:
            # A bug here must not surface in the operation that scheduled the webhook.
            log.exception("webhook %s (%s) delivery crashed", message.id, message.type)
            metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            return False
        metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
        return True

    @property
    def timeout(self) -> float:
        """Seconds one attempt waits for the app's answer."""
        return self._timeout

    def client(self) -> httpx.AsyncClient:
        """An HTTP client for :meth:`post` (no redirects: a 3xx is not an acceptance)."""
        return httpx.AsyncClient(
            timeout=self._timeout,
            transport=self._transport,
            follow_redirects=False,
            verify=verified_context(),
        )

    async def post(self, client: httpx.AsyncClient, message_id: str, body: str) -> str | None:
        """One signed delivery attempt; ``None`` when the app accepted it (2xx), else a short
        reason (``HTTP 500``, ``ConnectError: …``) that names no secret."""
        headers = signed_headers(
            self._signer,
            WebhookMessage(message_id, "", body, datetime.now(UTC)),
            at=datetime.now(UTC),
        )
        try:
            response = await client.post(self.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as error:
            # The URL may carry a credential of the app's (a query token): never recorded.
            return _describe(error).replace(self.url, "<webhook URL>")[:200]
        except Exception as error:
            # Anything else (httpx.InvalidURL, a transport's bug) is still a failed attempt to
            # record, not a crash that leaves the claim without an outcome; its message may
            # quote the URL, so only the type is kept.
            return f"{type(error).__name__} (unexpected)"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    async def _attempt(self, client: httpx.AsyncClient, message: WebhookMessage) -> None:
        # The attempt is stamped with real time, not the injected clock: receivers check the
        # timestamp against their own wall clock (5 minutes' tolerance) to refuse replays.
        headers = signed_headers(self._signer, message, at=datetime.now(UTC))
        response = await client.post(self.url, content=message.body.encode(), headers=headers)
        if not response.is_success:
            raise _DeliveryFailed(f"HTTP {response.status_code}")


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    # httpx messages name the URL at most; they never carry the secret or the body.
    return f"{type(error).__name__}: {error}"
