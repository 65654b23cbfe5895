"""Building the provider client: configuration errors surface before any network call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import grantkeeper.oauth
from grantkeeper.errors import ConfigurationError
from grantkeeper.oauth import OAuthProvider
from grantkeeper.settings import Settings


def test_public_names_are_sorted_and_importable() -> None:
    names = list(grantkeeper.oauth.__all__)
    assert names == sorted(names)
    for name in names:
        assert hasattr(grantkeeper.oauth, name)


def test_client_secrets_file_is_required() -> None:
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_CLIENT_SECRETS_FILE is not set"):
        OAuthProvider(Settings(_env_file=None))


def test_missing_client_secrets_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "client_secret_missing.json"
    # Settings check the file themselves: the mistake is found before any provider is built.
    with pytest.raises(ConfigurationError, match=r"client_secret_missing\.json does not exist"):
        Settings(_env_file=None, client_secrets_file=path)


def test_mobile_redirect_uri_must_be_one_google_accepts(tmp_path: Path) -> None:
    path = tmp_path / "client_secret.json"
    info = {"client_id": "c", "client_secret": "s", "token_uri": "https://t"}
    path.write_text(json.dumps({"web": info}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_MOBILE_REDIRECT_URI"):
        Settings(
            _env_file=None,
            client_secrets_file=path,
            mobile_redirect_uri="https://app.example/callback",
        )


def test_attempt_budget_comes_from_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "client_secret.json"
    info = {"client_id": "c", "client_secret": "s", "token_uri": "https://t"}
    path.write_text(json.dumps({"web": info}), encoding="utf-8")
    settings = Settings(_env_file=None, client_secrets_file=path, provider_attempts=5)
    provider = OAuthProvider(settings)
    assert provider.options.retry.attempts == 5
    asyncio.run(provider.aclose())
