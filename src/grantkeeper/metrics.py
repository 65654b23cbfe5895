"""Prometheus metrics: what an operator watches on a dashboard.

One registry for the process (:data:`REGISTRY`, served at ``/metrics``), kept apart from
prometheus-client's global one so embedding grantkeeper in an app that has its own metrics
never collides. Label values come from small fixed sets (outcomes are error codes, endpoints
are names, states are grant statuses), never from users, so cardinality stays bounded.

- ``grantkeeper_sign_ins_total{outcome}`` and ``grantkeeper_refreshes_total{outcome}``:
  ``ok`` or the error code (``invalid_code``, ``grant_revoked``, ``provider_unavailable`` …).
- ``grantkeeper_provider_request_seconds{endpoint}``: time to the provider's answer, measured
  by :class:`TimedTransport` around the httpx transport that talks to Google.
- ``grantkeeper_grants{state}``: grants per state, counted on every scrape and by the sweep.
- ``grantkeeper_risc_events_total{event,outcome}``,
  ``grantkeeper_webhook_deliveries_total{outcome}`` (``delivered``, ``retried``, ``failed``) and
  ``grantkeeper_webhook_outbox_pending`` (notifications waiting, counted on every scrape).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from grantkeeper.outbound_http import provider_transport
from grantkeeper.outbound_tls import verified_context

__all__ = [
    "CONTENT_TYPE",
    "GRANTS",
    "PROVIDER_LATENCY",
    "REFRESHES",
    "REGISTRY",
    "RISC_EVENTS",
    "SIGN_INS",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_OUTBOX_PENDING",
    "TimedTransport",
    "provider_endpoint",
    "record_refresh",
    "record_security_event",
    "record_sign_in",
    "render",
    "set_grant_counts",
]

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

SIGN_INS = Counter(
    "grantkeeper_sign_ins",
    "Server auth code sign-ins, by outcome (ok or the error code).",
    ["outcome"],
    registry=REGISTRY,
)
REFRESHES = Counter(
    "grantkeeper_refreshes",
    "Access-token refreshes at the provider, by outcome (ok or the error code).",
    ["outcome"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "grantkeeper_provider_request_seconds",
    "Time from sending a request to the identity provider to its response headers.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
GRANTS = Gauge(
    "grantkeeper_grants",
    "Stored grants by state (refreshed on every scrape and by the sweep).",
    ["state"],
    registry=REGISTRY,
)
RISC_EVENTS = Counter(
    "grantkeeper_risc_events",
    "Cross-Account Protection security events received, by event type and outcome.",
    ["event", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "grantkeeper_webhook_deliveries",
    "Webhook delivery attempts, by outcome: delivered, retried (failed, tried again later), "
    "failed (gave up after every attempt).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_OUTBOX_PENDING = Gauge(
    "grantkeeper_webhook_outbox_pending",
    "Webhook notifications waiting in the outbox for delivery (counted on every scrape).",
    registry=REGISTRY,
)

# The last path segment names the call; anything else is "other" so a provider with odd URLs
# cannot blow up the label set.
_ENDPOINTS = {
    "token": "token",
    "revoke": "revoke",
    "certs": "certs",
    "openid-configuration": "discovery",
    "risc-configuration": "risc_discovery",
    "tokeninfo": "tokeninfo",
    "userinfo": "userinfo",
}


_published_states: set[str] = set()


def provider_endpoint(url: str | httpx.URL) -> str:
    """A bounded label for a provider URL: ``token``, ``revoke``, ``certs``, … or ``other``."""
    path = urlsplit(str(url)).path.rstrip("/")
    return _ENDPOINTS.get(path.rsplit("/", 1)[-1], "other")


def record_sign_in(outcome: str) -> None:
    """Count a sign-in: ``ok`` or the :class:`~grantkeeper.errors.GrantkeeperError` code."""
    SIGN_INS.labels(outcome=outcome).inc()


def record_refresh(outcome: str) -> None:
    """Count a refresh at the provider: ``ok`` or the error code."""
    REFRESHES.labels(outcome=outcome).inc()


def record_security_event(event: str, outcome: str) -> None:
    """Count a security event: its short name (``unknown`` for a rejected token) and outcome."""
    RISC_EVENTS.labels(event=event, outcome=outcome).inc()


def set_grant_counts(counts: Mapping[str, int]) -> None:
    """Publish grants per state; states absent from ``counts`` drop to zero."""
    for state in _published_states - set(counts):
        GRANTS.labels(state=state).set(0)
    for state, count in counts.items():
        GRANTS.labels(state=state).set(count)
        _published_states.add(state)


def render() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)


class TimedTransport(httpx.AsyncBaseTransport):
    """Wraps the provider transport and observes each request's latency.

    The time runs to the response headers, which is what the provider controls; reading the
    body is ours.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or provider_transport(verify=verified_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            PROVIDER_LATENCY.labels(endpoint=provider_endpoint(request.url)).observe(
                time.perf_counter() - start
            )

    async def aclose(self) -> None:
        await self._inner.aclose()
