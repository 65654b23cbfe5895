"""Configuration: ``GRANTKEEPER_*`` environment variables and a ``.env`` file, read once.

Field names are the contract in ``design.md``; each field's docstring is what ``--help`` and the
docs say about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GOOGLE_ISSUER = "https://accounts.google.com"


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRANTKEEPER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    client_secrets_file: Path | None = None
    """Google's ``client_secret_*.json`` for the web (server) client, ``web`` or ``installed``."""

    issuer: str = GOOGLE_ISSUER
    """OpenID issuer; endpoints come from ``ISSUER/.well-known/openid-configuration``."""

    allowed_client_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Client ids accepted as the ID token's ``azp`` (iOS, Android, web); comma-separated."""

    # Fields that can hold secrets stay out of repr(): a settings object in a log line or a
    # traceback must not carry a password or a key.
    database_url: str | None = Field(default=None, repr=False)
    """SQLAlchemy URL; default SQLite in the data directory; ``postgresql://…`` for PostgreSQL."""

    database_schema: str | None = None
    """PostgreSQL only: keep grantkeeper's tables in this schema (created by ``db upgrade``)."""

    encryption_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    """Key ring for tokens at rest, comma-separated; the first key encrypts, all decrypt."""

    service_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    """Keys for the token API, comma-separated; each a key or ``sha256:<hex>`` of one."""

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("grantkeeper")))
    """Where the embedded default keeps its SQLite database and key file."""

    allow_insecure_http: bool | None = None
    """Accept plain HTTP without a trusted ``X-Forwarded-Proto: https``; default on only in dev
    mode with the emulator."""

    trusted_proxies: str = "127.0.0.1"
    """Comma list of proxy addresses whose ``X-Forwarded-Proto``/``-For`` headers are believed."""

    max_request_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    """Largest request body the keeper reads (a server auth code is at most 256 bytes)."""

    mobile_redirect_uri: str = ""
    """``redirect_uri`` used to redeem iOS/Android server auth codes (``''`` or ``postmessage``)."""

    web_redirect_uri: str = "postmessage"
    """``redirect_uri`` used to redeem web codes: ``postmessage`` for popup sign-in (GIS
    ``initCodeClient``), or the page's registered URL when it redirects to Google and back."""

    id_token_leeway_seconds: int = Field(default=60, ge=0, le=600)
    """Clock skew tolerated on ``exp``/``iat``."""

    refresh_margin_seconds: int = Field(default=300, ge=0, le=3000)
    """An access token is handed out only if it stays valid at least this long."""

    refresh_lease_seconds: float = Field(default=30.0, gt=0, le=600)
    """How long one instance may hold a grant's refresh lease before others may take over."""

    http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Timeout of each call to the provider."""

    provider_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts per provider call when it fails transiently (backoff with jitter between)."""

    webhook_url: str | None = None
    """Where grant life-cycle notifications are POSTed (Standard Webhooks)."""

    webhook_secret: str | None = Field(default=None, repr=False)
    """Standard Webhooks signing secret (``whsec_…``)."""

    _split = field_validator(
        "allowed_client_ids", "encryption_keys", "service_api_keys", mode="before"
    )(_split_commas)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'grantkeeper.sqlite3'}"
