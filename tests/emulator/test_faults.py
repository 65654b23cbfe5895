"""Armed faults, as clients meet them: statuses and bodies, delays, counts, malformed JSON,
dropped connections, and broken ID tokens."""

from __future__ import annotations

import time
from types import SimpleNamespace

import google.auth._exponential_backoff
import google.auth.exceptions
import httpx
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials

from .oauth_api import OAuthApi


@pytest.fixture
def backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """google-auth's retry back-off, recorded instead of slept."""
    slept: list[float] = []
    fake_time = SimpleNamespace(sleep=slept.append)
    monkeypatch.setattr(google.auth._exponential_backoff, "time", fake_time)
    return slept


def creds(api: OAuthApi, refresh_token: str) -> Credentials:
    return Credentials(
        None,
        refresh_token=refresh_token,
        token_uri=f"{api.emulator.base_url}/token",
        client_id=api.web["client_id"],
        client_secret=api.web["client_secret"],
    )


def test_status_and_body_then_recovery_as_google_auth_retries(
    api: OAuthApi, backoff_sleeps: list[float]
) -> None:
    token = api.sign_in()["refresh_token"]
    api.emulator.control.add_fault("token", status=503, count=2)
    credentials = creds(api, token)
    credentials.refresh(Request())  # two 503s, then the real answer
    assert credentials.token.startswith("ya29.")
    assert len(backoff_sleeps) == 2
    assert api.emulator.control.stats()["token"]["refresh_token"] == 3
    assert (
        api.emulator.control.add_fault(
            "token", status=400, body={"error": "invalid_grant", "error_description": "Bad Request"}
        )["count"]
        == 1
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant: Bad Request"):
        creds(api, token).refresh(Request())


def test_default_error_body_and_custom_headers(api: OAuthApi) -> None:
    api.emulator.control.add_fault("token", status=429, headers={"Retry-After": "7"})
    response = api.http.post("/token", data={})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"error": "internal_failure", "error_description": "Backend Error"}
    api.emulator.control.add_fault("discovery", status=502, body="upstream hiccup")
    text = api.http.get("/.well-known/openid-configuration")
    assert (text.status_code, text.text) == (502, "upstream hiccup")
    assert api.http.get("/.well-known/openid-configuration").status_code == 200


def test_count_and_clear(api: OAuthApi) -> None:
    api.emulator.control.add_fault("userinfo", status=500, count=None)
    statuses = [api.http.get("/v1/userinfo").status_code for _ in range(3)]
    assert statuses == [500, 500, 500]
    assert len(api.emulator.control.http.get("/emulator/faults").json()) == 1
    assert api.emulator.control.clear_faults("userinfo") == 1
    assert api.http.get("/v1/userinfo").status_code == 401


def test_delay(api: OAuthApi) -> None:
    api.emulator.control.add_fault("certs", delay_ms=300)
    started = time.monotonic()
    assert api.http.get("/oauth2/v3/certs").status_code == 200  # slow, then normal
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.http.get("/oauth2/v3/certs")
    assert time.monotonic() - started < 0.3


def test_delay_beyond_the_client_timeout(api: OAuthApi) -> None:
    api.emulator.control.add_fault("token", delay_ms=2000)
    with pytest.raises(httpx.ReadTimeout):
        api.http.post("/token", data={}, timeout=0.2)


def test_malformed_json(api: OAuthApi, backoff_sleeps: list[float]) -> None:
    token = api.sign_in()["refresh_token"]
    api.emulator.control.add_fault("token", malformed_json=True)
    response = api.http.post("/token", data={})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()
    api.emulator.control.add_fault("token", malformed_json=True)
    # google-auth indexes the unparsed text as if it were the JSON object.
    with pytest.raises(TypeError, match="string indices"):
        creds(api, token).refresh(Request())


def test_dropped_connection(api: OAuthApi) -> None:
    token = api.sign_in()["refresh_token"]
    api.emulator.control.add_fault("token", drop_connection=True)
    with pytest.raises(httpx.RemoteProtocolError):
        api.http.post("/token", data={})
    api.emulator.control.add_fault("token", drop_connection=True)
    with pytest.raises(google.auth.exceptions.TransportError):
        creds(api, token).refresh(Request())
    creds(api, token).refresh(Request())  # the fault was used up


def test_certs_outage_seen_by_a_verifier(api: OAuthApi) -> None:
    token = api.sign_in()["id_token"]
    api.emulator.control.add_fault("certs", status=500)
    with pytest.raises(google.auth.exceptions.TransportError, match="Could not fetch certificates"):
        id_token.verify_token(
            token, Request(), certs_url=f"{api.emulator.base_url}/oauth2/v1/certs"
        )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("alg_none", "Unsupported signature algorithm none"),
        ("wrong_key", "Could not verify token signature"),
        ("unknown_kid", "Certificate for key id .* not found"),
        ("wrong_aud", "Token has wrong audience"),
        ("expired", "Token expired"),
        ("iat_future", "Token used too early"),
    ],
)
def test_id_token_faults_rejected_by_google_auth(api: OAuthApi, kind: str, message: str) -> None:
    api.emulator.control.add_fault(id_token=kind)
    bad = api.sign_in()["id_token"]
    with pytest.raises(ValueError, match=message):
        api.verify_id_token(bad)
    api.verify_id_token(api.sign_in()["id_token"])  # count 1: the next token is sound


@pytest.mark.parametrize(("kind", "claim"), [("wrong_iss", "iss"), ("wrong_azp", "azp")])
def test_id_token_claim_faults(api: OAuthApi, kind: str, claim: str) -> None:
    # google-auth's verify_token checks neither iss nor azp; the claims are what is broken.
    sound = api.verify_id_token(api.sign_in()["id_token"])
    api.emulator.control.add_fault(id_token=kind)
    broken = api.verify_id_token(api.sign_in()["id_token"])
    assert broken[claim] != sound[claim]
    assert broken["sub"] == sound["sub"]


def test_unknown_id_token_fault_is_refused(api: OAuthApi) -> None:
    with pytest.raises(httpx.HTTPStatusError) as raised:
        api.emulator.control.add_fault(id_token="forged")
    assert raised.value.response.status_code == 400
    assert "alg_none" in raised.value.response.json()["error_description"]


def test_latency_setting_slows_google_endpoints_only(api: OAuthApi) -> None:
    api.emulator.control.update_settings(latency_ms=200)
    started = time.monotonic()
    api.http.get("/.well-known/openid-configuration")
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    api.emulator.control.stats()
    assert time.monotonic() - started < 0.2
