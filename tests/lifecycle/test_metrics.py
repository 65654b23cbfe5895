"""Metrics: provider latency measured around the real transport, bounded labels, grant gauge."""

from __future__ import annotations

import httpx
import pytest

from grantkeeper import metrics
from grantkeeper.emulator.app import create_app

pytestmark = pytest.mark.anyio


def _count(endpoint: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "grantkeeper_provider_request_seconds_count", {"endpoint": endpoint}
    )
    return value or 0.0


async def test_provider_latency_is_observed_per_endpoint() -> None:
    transport = metrics.TimedTransport(httpx.ASGITransport(app=create_app()))
    before_certs, before_discovery = _count("certs"), _count("discovery")
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as client:
        assert (await client.get("/oauth2/v3/certs")).status_code == 200
        assert (await client.get("/.well-known/openid-configuration")).status_code == 200
        assert (await client.get("/.well-known/risc-configuration")).status_code == 200
    assert _count("certs") == before_certs + 1
    assert _count("discovery") == before_discovery + 1
    assert _count("risc_discovery") >= 1


def test_endpoint_labels_are_a_fixed_set() -> None:
    assert metrics.provider_endpoint("https://oauth2.googleapis.com/token") == "token"
    assert metrics.provider_endpoint("https://oauth2.googleapis.com/revoke?token=x") == "revoke"
    assert metrics.provider_endpoint("https://www.googleapis.com/oauth2/v3/certs") == "certs"
    assert metrics.provider_endpoint("https://evil.example/1101694844/abc") == "other"


def test_grant_gauge_drops_states_that_disappear() -> None:
    metrics.set_grant_counts({"active": 3, "pending_revocation": 1})
    metrics.set_grant_counts({"active": 4})
    text = metrics.render().decode()
    assert 'grantkeeper_grants{state="active"} 4.0' in text
    assert 'grantkeeper_grants{state="pending_revocation"} 0.0' in text
