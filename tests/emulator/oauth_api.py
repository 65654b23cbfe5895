"""A small raw-HTTP client of ``/token`` for the OAuth-core tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from google.auth.transport.requests import Request
from google.oauth2 import id_token

from grantkeeper.emulator import EmulatorHandle

SCOPES = ["openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata"]
REDIRECT = "http://localhost:8080/callback"


@dataclass
class OAuthApi:
    """The endpoints as a backend calls them: plain form POSTs, answers kept raw."""

    emulator: EmulatorHandle
    web: dict[str, Any]
    ios: dict[str, Any]
    http: httpx.Client

    def code(self, email: str = "alice@example.com", **opts: Any) -> str:
        opts.setdefault("scopes", SCOPES)
        return self.emulator.control.server_auth_code(
            self.ios["client_id"], self.web["client_id"], email, **opts
        )

    def exchange(self, code: str, redirect_uri: str | None = "", **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.web["client_id"],
            "client_secret": self.web["client_secret"],
            **({"redirect_uri": redirect_uri} if redirect_uri is not None else {}),
        }
        return self.http.post("/token", data=form | extra)

    def sign_in(self, email: str = "alice@example.com", **opts: Any) -> dict[str, Any]:
        response = self.exchange(self.code(email, **opts))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.web["client_id"],
            "client_secret": self.web["client_secret"],
        }
        return self.http.post("/token", data=form | extra)

    def verify_id_token(self, token: str) -> dict[str, object]:
        """Verify an ID token as a backend does with google-auth: signature against the
        emulator's certs, audience the web client."""
        claims: dict[str, object] = id_token.verify_token(
            token,
            Request(),
            audience=self.web["client_id"],
            certs_url=f"{self.emulator.base_url}/oauth2/v1/certs",
        )
        return claims
