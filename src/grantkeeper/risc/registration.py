"""Registering the Cross-Account Protection receiver with Google's RISC stream API.

Google's guide ("Protect user accounts with Cross-Account Protection"): a service account with
the RISC Configuration Admin role, in the project of the Sign-In clients, authenticates with a
self-signed JWT (RS256, ``kid`` = its private key id; ``iss`` = ``sub`` = its email; ``aud`` =
the RiscManagementService; one hour) and POSTs ``{"delivery": {"delivery_method": push, "url":
…}, "events_requested": […]}`` to the stream configuration endpoint (``…/v1beta/stream:update``).
``GET …/v1beta/stream`` reads it back, ``…/stream/status`` tells whether it is enabled, and
``…/stream:verify`` sends a verification event. The endpoint comes from the issuer's
``/.well-known/risc-configuration`` (``configuration_endpoint``), so the emulator's stream API
is used the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from grantkeeper.errors import ConfigurationError, ProviderError
from grantkeeper.risc.discovery import configuration_url
from grantkeeper.risc.events import SHORT_NAMES

AUDIENCE = "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService"
PUSH = "https://schemas.openid.net/secevent/risc/delivery-method/push"
GOOGLE_STREAM = "https://risc.googleapis.com/v1beta/stream"
#: Every event the keeper acts on, and the verification event ``stream:verify`` sends.
DEFAULT_EVENTS = tuple(sorted(SHORT_NAMES.values()))


def service_account_jwt(key_file: Path, *, now: float | None = None) -> str:
    """The self-signed JWT Google's RISC API takes as a bearer token (one hour)."""
    import json

    from google.auth import crypt, jwt

    try:
        info = json.loads(key_file.read_text(encoding="utf-8"))
        signer = crypt.RSASigner.from_service_account_info(info)
        email = info["client_email"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigurationError(
            f"{key_file} is not a service account key file (JSON with client_email, "
            f"private_key, private_key_id): {type(error).__name__}."
        ) from None
    issued = int(now if now is not None else time.time())
    payload = {"iss": email, "sub": email, "aud": AUDIENCE, "iat": issued, "exp": issued + 3600}
    token: bytes = jwt.encode(signer, payload)
    return token.decode("ascii")


def stream_body(url: str, events: list[str]) -> dict[str, Any]:
    uris = [SHORT_NAMES.get(event, event) for event in events]
    return {"delivery": {"delivery_method": PUSH, "url": url}, "events_requested": uris}


class RiscStream:
    """The stream configuration API of one issuer (Google's or the emulator's)."""

    def __init__(self, issuer: str, bearer: str, *, timeout: float = 10.0) -> None:
        self._issuer = issuer
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {bearer}"})

    def close(self) -> None:
        self._client.close()

    def endpoint(self) -> str:
        answer = self._client.get(configuration_url(self._issuer))
        document = _json(answer, "the RISC configuration")
        found = document.get("configuration_endpoint")
        return found if isinstance(found, str) else GOOGLE_STREAM

    def register(self, url: str, events: list[str]) -> dict[str, Any]:
        endpoint = self.endpoint()
        _json(self._client.post(endpoint + ":update", json=stream_body(url, events)), "update")
        return _json(self._client.get(endpoint), "the stream")

    def read(self) -> dict[str, Any]:
        endpoint = self.endpoint()
        stream = _json(self._client.get(endpoint), "the stream")
        status = _json(self._client.get(endpoint + "/status"), "the stream status")
        return {**stream, "status": status.get("status")}

    def set_status(self, enabled: bool) -> dict[str, Any]:
        body = {"status": "enabled" if enabled else "disabled"}
        return _json(self._client.post(self.endpoint() + "/status:update", json=body), "status")

    def verify(self, state: str) -> None:
        _json(self._client.post(self.endpoint() + ":verify", json={"state": state}), "verify")


def _json(answer: httpx.Response, what: str) -> dict[str, Any]:
    if answer.status_code >= 400:
        try:
            message = answer.json().get("error", {}).get("message", "")
        except ValueError:
            message = ""
        raise ProviderError(
            f"The RISC API refused {what}: HTTP {answer.status_code} {str(message)[:200]}".strip()
        )
    try:
        body = answer.json() if answer.content else {}
    except ValueError:
        raise ProviderError(
            f"The RISC API answered {what} with something that is not JSON."
        ) from None
    return body if isinstance(body, dict) else {}
