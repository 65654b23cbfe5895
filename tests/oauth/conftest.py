"""Fixtures for the provider-client tests: a test signing key and an ID-token factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from grantkeeper.oauth.id_token import IdTokenPolicy, at_hash

ISSUER = "https://issuer.test"
SERVER_CLIENT = "server-123.apps.googleusercontent.com"
IOS_CLIENT = "ios-456.apps.googleusercontent.com"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
ACCESS_TOKEN = "ya29.test-access-token"

TokenFactory = Callable[..., str]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "a" * 40, "use": "sig", "alg": "RS256"})


@pytest.fixture(scope="session")
def other_key() -> RSAKey:
    """A second key: signs under the genuine kid in the wrong-key attack."""
    return RSAKey.generate_key(2048, parameters={"kid": "b" * 40})


@pytest.fixture
def policy() -> IdTokenPolicy:
    return IdTokenPolicy(
        issuers=frozenset({ISSUER}),
        audience=SERVER_CLIENT,
        allowed_azp=frozenset({IOS_CLIENT}),
        leeway_seconds=60,
    )


def default_claims(**overrides: Any) -> dict[str, Any]:
    iat = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": SERVER_CLIENT,
        "azp": IOS_CLIENT,
        "sub": "110169484474386276334",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://example.com/ada.png",
        "locale": "en",
        "iat": iat,
        "exp": iat + 3600,
        "at_hash": at_hash(ACCESS_TOKEN),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def mint(signing_key: RSAKey) -> TokenFactory:
    """Mint an RS256 ID token; ``key``/``header``/``drop`` alter it for attack cases."""

    def factory(
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        payload = default_claims(**claims)
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(
            header or {"alg": "RS256", "kid": signing_key.kid},
            payload,
            key or signing_key,
            algorithms=["RS256"],
        )

    return factory
