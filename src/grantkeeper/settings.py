"""Configuration: ``GRANTKEEPER_*`` environment variables and a ``.env`` file, read once.

Field names are the contract in ``design.md``; each field's docstring is what ``--help`` and the
docs say about it. The ``.env`` file is the one ``GRANTKEEPER_ENV_FILE`` names, else ``.env`` in
the current directory (a cron job started elsewhere names its file).

A bad configuration fails when ``Settings()`` is built, with one
:class:`~grantkeeper.errors.ConfigurationError` line naming each variable at fault: values out of
range, a redirect URI Google would refuse, a client secrets file that does not load, a shared
database without a key ring, and any ``GRANTKEEPER_*`` variable that is no setting (with the
nearest real name), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import platformdirs
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from grantkeeper import settings_checks as checks
from grantkeeper.errors import ConfigurationError

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
    """Keys for the token API, comma-separated; each a key or ``sha256:<hex>`` of one, or
    ``name:<key>;scopes=…;ops=…`` (a named key with limits), or a JSON list of such keys."""

    @field_validator("service_api_keys", mode="before")
    @classmethod
    def _service_keys(cls, value: object) -> object:
        from grantkeeper.service_keys import parse_keys, split_setting

        entries = split_setting(value) if isinstance(value, str) else value
        if isinstance(entries, list) and all(isinstance(e, str) for e in entries):
            try:
                parse_keys(entries)
            except ConfigurationError as error:
                raise ValueError(error.message) from None
        return entries

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("grantkeeper")))
    """Where the embedded default keeps its SQLite database and key file."""

    allow_insecure_http: bool | None = None
    """Accept plain HTTP without a trusted ``X-Forwarded-Proto: https``; default on only in dev
    mode with the emulator."""

    ops_key: str | None = Field(default=None, repr=False)
    """Bearer key for ``/metrics``, ``/readyz``, ``/docs`` and ``/openapi.json`` (a key of at
    least 16 characters or ``sha256:<hex>``); unset, they follow the HTTPS rule only."""

    ops_public: bool = False
    """Serve ``/metrics``, ``/readyz``, ``/docs`` and ``/openapi.json`` over plain HTTP without a
    key (a private network only)."""

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

    require_nonce: bool = False
    """Refuse sign-ins that carry no ``nonce`` (before the code is spent): every app passes the
    nonce it gave Google Sign-In, binding the code to its session (OIDC Core §3.1.3.7)."""

    signin_rate_per_minute: int = Field(default=60, ge=0, le=1_000_000)
    """Sign-in POSTs accepted per client address a minute (in bursts of as many), per process;
    the address is the one the trusted proxies vouch for. 0: no limit."""

    token_rate_per_minute: int = Field(default=6000, ge=0, le=10_000_000)
    """Token-API requests accepted per service key a minute, per process. 0: no limit."""

    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    """How long ``serve`` keeps an idle HTTP connection open. Behind a load balancer or a
    client pool it must outlast their idle timeout (Google Cloud's load balancers keep idle
    connections 600 s): a request sent on a connection the keeper is closing gets no answer
    (a 502 at the balancer). uvicorn's own default is 5 s."""

    refresh_cooldown_seconds: float = Field(default=30.0, ge=0, le=3600)
    """After a transient refresh failure, callers get 503 with Retry-After for this long
    without the provider being called; doubled per consecutive failure (shared by instances)."""

    refresh_cooldown_max_seconds: float = Field(default=900.0, ge=0, le=86400)
    """The longest a failing grant's cooldown grows."""

    refresh_failing_after: int = Field(default=3, ge=1, le=1000)
    """Consecutive transient refresh failures after which a ``refresh_failing`` event (webhook
    ``grant.refresh_failing``) is sent once."""

    access_log: bool = True
    """``serve`` writes a line per request (uvicorn's access log, tokens and codes redacted).
    ``false`` where whatever sits in front logs requests already: a line costs about a fifth of
    the CPU of the keeper's cheapest request (``bench``, a bare uvicorn app: 0.37-0.45 ms a
    request with the line, 0.24-0.28 ms without). Errors and the keeper's own lines stay."""

    log_format: Literal["text", "json"] = "text"
    """``json``: every log line (grantkeeper's and uvicorn's) is one JSON object with ``time``,
    ``level``, ``logger`` and ``message``, for a log pipeline; ``text``: uvicorn's usual lines."""

    webhook_url: str | None = None
    """Where grant life-cycle notifications are POSTed (Standard Webhooks)."""

    webhook_secret: str | None = Field(default=None, repr=False)
    """Standard Webhooks signing secret (``whsec_…``)."""

    webhook_retention_days: float = Field(default=7.0, ge=0, le=3650)
    """How long a delivered notification stays in the outbox (``webhooks list``) before a
    deliverer deletes it; 0 keeps them. Failed and pending ones always stay."""

    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """How long one delivery attempt waits for the app's answer; a claim on a message lasts
    three times as long (plus 5 s) before another deliverer may take it over."""

    webhook_max_attempts: int = Field(default=12, ge=1, le=100)
    """Delivery attempts per notification before it is marked ``failed`` (``grantkeeper
    webhooks replay`` sends it again). With the default backoff, 12 attempts span about a day."""

    webhook_retry_seconds: float = Field(default=60.0, ge=1, le=86400)
    """The wait after a notification's first failed attempt; doubled per attempt (with
    jitter), at most ``GRANTKEEPER_WEBHOOK_RETRY_MAX_SECONDS``."""

    webhook_retry_max_seconds: float = Field(default=21600.0, ge=1, le=7 * 86400)
    """The longest wait between two attempts of one notification (default 6 h)."""

    migrate_on_start: bool = True
    """Bring the database schema up to date when a keeper opens (the library, ``serve``). Off:
    the keeper refuses to start on an outdated schema, and ``grantkeeper db upgrade`` (run once
    per deploy) is the only migrator."""

    _split = field_validator("allowed_client_ids", "encryption_keys", mode="before")(_split_commas)
    _issuer = field_validator("issuer")(checks.check_issuer)
    _mobile_redirect = field_validator("mobile_redirect_uri")(checks.check_mobile_redirect_uri)
    _web_redirect = field_validator("web_redirect_uri")(checks.check_web_redirect_uri)
    _database_url = field_validator("database_url")(checks.check_database_url)
    _schema = field_validator("database_schema")(checks.check_schema)

    @field_validator("client_secrets_file")
    @classmethod
    def _client_secrets_load(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        # Imported here: the oauth package pulls in httpx, which most commands do not need.
        from grantkeeper.oauth.client_secrets import load_client_secrets

        load_client_secrets(value)  # ConfigurationError (a ValueError) names the file and field
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return checks.check_url(value, what="the webhook URL") if value else value

    @model_validator(mode="after")
    def _rules_across_fields(self) -> Self:
        problem = checks.key_ring_problem(self.database_url, self.encryption_keys)
        if problem:
            raise ValueError(problem)
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "GRANTKEEPER_WEBHOOK_URL is set but GRANTKEEPER_WEBHOOK_SECRET is not; make one "
                "with 'grantkeeper webhooks secret'"
            )
        return self

    def __init__(self, **values: Any) -> None:
        env_file = _env_file(values)
        _refuse_unknown_variables(env_file, self.__class__)
        try:
            super().__init__(_env_file=env_file, **values)
        except ValidationError as error:
            raise ConfigurationError(
                _sentence(checks.one_line(error.errors(), SECRET_FIELDS))
            ) from None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'grantkeeper.sqlite3'}"


#: Fields whose values never appear in messages (they may hold a password or a key).
SECRET_FIELDS = frozenset({"database_url", "encryption_keys", "service_api_keys", "webhook_secret"})


def _env_file(values: dict[str, Any]) -> Path | None:
    """The ``.env`` file to read: an explicit ``_env_file`` argument, ``GRANTKEEPER_ENV_FILE``
    (which must exist), else ``.env`` in the current directory when there is one."""
    if "_env_file" in values:
        given = values.pop("_env_file")
        return Path(given) if given is not None else None
    named = os.environ.get(checks.ENV_FILE_VARIABLE)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"{checks.ENV_FILE_VARIABLE}={named} names no readable file; point it at your "
                ".env file or unset it."
            )
        return path
    default = Path(".env")
    return default if default.is_file() else None


def _refuse_unknown_variables(env_file: Path | None, settings_class: type[Settings]) -> None:
    found = {name: "the environment" for name in os.environ}
    if env_file is not None:
        from dotenv import dotenv_values

        found.update({name: str(env_file) for name in dotenv_values(env_file)})
    problems = checks.unknown_variables(found, settings_class.model_fields)
    if problems:
        raise ConfigurationError(_sentence("; ".join(problems)))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?")) else text + "."
