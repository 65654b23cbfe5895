"""Validating the OpenID discovery document."""

from __future__ import annotations

from typing import Any

import pytest

from grantkeeper.errors import ProviderError
from grantkeeper.oauth.discovery import (
    GOOGLE_ISSUERS,
    discovery_url,
    parse_provider_metadata,
)

# Google's document (google-protocol.md §1), trimmed to what matters.
GOOGLE = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
    "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
    "id_token_signing_alg_values_supported": ["RS256"],
}


def doc(**overrides: Any) -> dict[str, Any]:
    data = {**GOOGLE, **overrides}
    return {k: v for k, v in data.items() if v is not None}


def test_google_document() -> None:
    metadata = parse_provider_metadata(GOOGLE, issuer="https://accounts.google.com")
    assert metadata.token_endpoint == "https://oauth2.googleapis.com/token"
    assert metadata.revocation_endpoint == "https://oauth2.googleapis.com/revoke"
    assert metadata.jwks_uri == "https://www.googleapis.com/oauth2/v3/certs"
    assert metadata.accepted_issuers == GOOGLE_ISSUERS


def test_other_issuers_are_matched_exactly() -> None:
    local = "http://127.0.0.1:8765"
    document = {
        "issuer": local,
        "token_endpoint": f"{local}/token",
        "jwks_uri": f"{local}/oauth2/v3/certs",
    }
    metadata = parse_provider_metadata(document, issuer=local + "/")
    assert metadata.accepted_issuers == {local}
    assert metadata.revocation_endpoint is None


def test_discovery_url() -> None:
    assert discovery_url("https://accounts.google.com/") == (
        "https://accounts.google.com/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a JSON object"),
        (doc(issuer="https://evil.test"), "is not the configured issuer"),
        (doc(token_endpoint=None), "no token_endpoint"),
        (doc(jwks_uri=None), "no jwks_uri"),
        (doc(jwks_uri="ftp://x"), "jwks_uri is not a URL"),
        (doc(token_endpoint="http://oauth2.googleapis.com/token"), "not an https URL"),
        (doc(id_token_signing_alg_values_supported=["HS256"]), "RS256"),
    ],
)
def test_bad_documents(document: Any, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        parse_provider_metadata(document, issuer="https://accounts.google.com")
