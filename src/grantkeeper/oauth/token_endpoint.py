"""The token and revocation endpoints as plain data: what to send, how to read the answer.

No I/O here (the model is google-auth's ``_client`` helpers and Authlib's
``rfc6749/parameters.py``): :mod:`grantkeeper.oauth.provider` calls these and
:mod:`grantkeeper.oauth.provider_calls` does the HTTP.

Outcomes of reading a token-endpoint answer:

* success → :class:`TokenResponse`;
* ``invalid_grant`` on a code exchange → :class:`~grantkeeper.errors.InvalidCode` (malformed,
  expired, already used, PKCE mismatch — Google says "Bad Request", "Malformed auth code.", …);
* ``invalid_grant`` on a refresh → :class:`RefreshTokenRejected`, a
  :class:`~grantkeeper.errors.GrantRevoked` carrying Google's ``error_description`` and
  ``error_subtype``. The keeper catches it, re-reads the store (a lost race is not a
  revocation), then marks the grant revoked with the reason it can infer. If it escapes
  unhandled it still means the right thing on the wire (``grant_revoked``, 409);
* ``redirect_uri_mismatch``/``invalid_client``/``unauthorized_client``/anything else the
  provider refuses → :class:`~grantkeeper.errors.ProviderError` saying which configuration item
  is wrong (never the secret, code or token);
* 408/429/5xx, or ``server_error``/``temporarily_unavailable``/``internal_failure`` (the codes
  google-auth's ``_can_retry`` treats as transient) → a retryable
  :class:`~grantkeeper.errors.ProviderUnavailable`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from grantkeeper.errors import (
    GrantkeeperError,
    GrantRevoked,
    InvalidCode,
    ProviderError,
    ProviderUnavailable,
)
from grantkeeper.oauth.scopes import normalize_scopes, scope_string

Platform = Literal["ios", "android", "web"]
GrantType = Literal["authorization_code", "refresh_token"]

PLATFORMS: tuple[Platform, ...] = ("ios", "android", "web")
WEB_REDIRECT_URI = "postmessage"
MOBILE_REDIRECT_URIS = ("", WEB_REDIRECT_URI)

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_ERRORS = frozenset({"server_error", "temporarily_unavailable", "internal_failure"})
# Google's subtypes for "session control policy: sign in again" (google-auth reauth.py).
REAUTH_SUBTYPES = frozenset({"invalid_rapt", "rapt_required"})

_MAX_DESCRIPTION = 200


def is_web_redirect_uri(value: str) -> bool:
    """``'postmessage'`` (popup flows) or an absolute ``http(s)`` URL (redirect flows)."""
    if value == WEB_REDIRECT_URI:
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


def redirect_uri_for(
    platform: Platform, *, mobile_redirect_uri: str = "", web_redirect_uri: str = WEB_REDIRECT_URI
) -> str:
    """The ``redirect_uri`` to redeem a server auth code with; chosen by us, never the caller.

    iOS/Android server auth codes are redeemed with ``''`` (Google's offline-access guide: "If
    you don't have a web version of your app, you can specify an empty string") or with
    ``'postmessage'`` when the app also has a web version (``GRANTKEEPER_MOBILE_REDIRECT_URI``).
    Web popup codes (GIS ``initCodeClient``, ``grantOfflineAccess``) use ``'postmessage'``; a
    web page that redirects to Google and back (GIS ``ux_mode: 'redirect'``, the classic
    server-side flow) gets codes bound to its registered redirect URI, so the exchange must
    send that URI (``GRANTKEEPER_WEB_REDIRECT_URI``).
    """
    if platform == "web":
        if not is_web_redirect_uri(web_redirect_uri):
            raise ValueError("web_redirect_uri must be 'postmessage' or an http(s) URL")
        return web_redirect_uri
    if platform in ("ios", "android"):
        if mobile_redirect_uri not in MOBILE_REDIRECT_URIS:
            raise ValueError("mobile_redirect_uri must be '' or 'postmessage'")
        return mobile_redirect_uri
    raise ValueError(f"unknown platform {platform!r}")


def authorization_code_form(
    code: str,
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code_verifier: str | None = None,
) -> dict[str, str]:
    """The form body of an ``authorization_code`` grant (client_secret_post, RFC 6749 §4.1.3)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": redirect_uri,
    }
    if code_verifier is not None:
        form["code_verifier"] = code_verifier
    return form


def refresh_token_form(
    refresh_token: str,
    *,
    client_id: str,
    client_secret: str,
    scopes: frozenset[str] | set[str] | None = None,
) -> dict[str, str]:
    """The form body of a ``refresh_token`` grant (RFC 6749 §6); ``scope`` only when narrowing."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if scopes:
        form["scope"] = scope_string(scopes)
    return form


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token-endpoint answer. Token fields are hidden from ``repr``.

    ``expires_at`` is ``issued_at + expires_in`` on the injected clock (None if the provider did
    not say); ``scopes`` is None when the answer had no ``scope`` (a refresh keeps the grant's
    scopes then); ``refresh_token`` is None when none was issued (the keeper keeps its stored
    one); ``refresh_token_expires_at`` is set only for time-limited grants.
    """

    access_token: str = field(repr=False)
    issued_at: datetime
    expires_in: int | None
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    scopes: frozenset[str] | None = None
    id_token: str | None = field(default=None, repr=False)
    refresh_token_expires_in: int | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.expires_in is None:
            return None
        return self.issued_at + timedelta(seconds=self.expires_in)

    @property
    def refresh_token_expires_at(self) -> datetime | None:
        if self.refresh_token_expires_in is None:
            return None
        return self.issued_at + timedelta(seconds=self.refresh_token_expires_in)


class RefreshTokenRejected(GrantRevoked):
    """The provider answered ``invalid_grant`` to a refresh: the refresh token is dead.

    Raised by :meth:`OAuthProvider.refresh`; never retried. ``reason`` is ``reauth_required``
    for Google's session-control subtypes (``invalid_rapt``/``rapt_required``), else
    ``revoked``; the keeper may refine it (idle, time-limited grant expired).
    """

    def __init__(self, error_description: str | None, error_subtype: str | None = None) -> None:
        self.error_description = error_description
        self.error_subtype = error_subtype
        reason = "reauth_required" if error_subtype in REAUTH_SUBTYPES else "revoked"
        detail = f"invalid_grant: {error_description}" if error_description else "invalid_grant"
        super().__init__(
            reason,
            f"The provider rejected the refresh token ({detail}).",
            provider_error="invalid_grant",
        )


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """An OAuth error answer (RFC 6749 §5.2) plus Google's ``error_subtype``."""

    error: str
    description: str | None = None
    subtype: str | None = None


def parse_error_body(body: bytes) -> ErrorBody | None:
    """``{"error": ..., "error_description": ...}`` or None for anything else (HTML, empty)."""
    data = _json_object(body)
    if data is None or not isinstance(data.get("error"), str):
        return None
    return ErrorBody(
        error=_clean(data["error"]) or "unknown",
        description=_clean(data.get("error_description")),
        subtype=_clean(data.get("error_subtype")),
    )


def is_transient(status: int, error: ErrorBody | None = None) -> bool:
    """Whether the same request may succeed later (the retry decision for a response)."""
    if status in TRANSIENT_STATUSES:
        return True
    return error is not None and (
        error.error in TRANSIENT_ERRORS or error.description in TRANSIENT_ERRORS
    )


def parse_token_response(
    status: int,
    body: bytes,
    *,
    grant_type: GrantType,
    now: datetime,
    platform: Platform | None = None,
    redirect_uri: str | None = None,
) -> TokenResponse:
    """Read a token-endpoint answer; raise the outcome described in the module docstring.

    ``platform``/``redirect_uri`` (code exchanges only) go into the configuration hint of a
    ``redirect_uri_mismatch``.
    """
    if 200 <= status < 300:
        return _parse_success(body, now=now)
    raise token_error(
        status, body, grant_type=grant_type, platform=platform, redirect_uri=redirect_uri
    )


def token_error(
    status: int,
    body: bytes,
    *,
    grant_type: GrantType,
    platform: Platform | None = None,
    redirect_uri: str | None = None,
) -> GrantkeeperError:
    """The exception for a non-2xx token-endpoint answer (see the module docstring)."""
    error = parse_error_body(body)
    if is_transient(status, error):
        return _unavailable("token endpoint", status, error)
    if error is None:
        return ProviderError(
            f"The token endpoint answered HTTP {status} without an OAuth error body.",
            provider_status=status,
        )
    detail = _detail(error)
    if error.error == "invalid_grant":
        if grant_type == "refresh_token":
            return RefreshTokenRejected(error.description, error.subtype)
        return InvalidCode(f"The provider rejected the server auth code ({detail}).")
    hint = _config_hint(error.error, grant_type, platform, redirect_uri)
    return ProviderError(
        f"The token endpoint refused the request ({detail}). {hint}".rstrip(),
        provider_error=error.error,
        provider_status=status,
    )


def revoke_error(status: int, body: bytes) -> GrantkeeperError | None:
    """None when a revocation is done, else the exception to raise.

    RFC 7009 §2.2: 200 means revoked. Google answers 400 ``invalid_token`` for a token it no
    longer knows; revocation is idempotent for us, so that counts as done too.
    """
    if 200 <= status < 300:
        return None
    error = parse_error_body(body)
    if is_transient(status, error):
        return _unavailable("revocation endpoint", status, error)
    if error is not None and error.error == "invalid_token":
        return None
    detail = _detail(error) if error else f"HTTP {status}"
    return ProviderError(
        f"The revocation endpoint refused the request ({detail}).", provider_status=status
    )


def _parse_success(body: bytes, *, now: datetime) -> TokenResponse:
    data = _json_object(body)
    if data is None:
        raise ProviderError("The token endpoint answered success with a body that is not JSON.")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderError("The token endpoint's answer has no access_token.")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ProviderError("The token endpoint issued a token that is not a Bearer token.")
    scope = data.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise ProviderError("The token endpoint's scope is not a string.")
    return TokenResponse(
        access_token=access_token,
        issued_at=now,
        expires_in=_seconds(data, "expires_in"),
        token_type="Bearer",
        refresh_token=_optional_token(data, "refresh_token"),
        scopes=normalize_scopes(scope) if scope is not None else None,
        id_token=_optional_token(data, "id_token"),
        refresh_token_expires_in=_seconds(data, "refresh_token_expires_in"),
    )


def _seconds(data: dict[str, Any], name: str) -> int | None:
    # google-auth's _parse_expiry: "expires_in" may be an int or a string.
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ProviderError(f"The token endpoint's {name} is not a number.")
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ProviderError(f"The token endpoint's {name} is not a number.")
        return int(value)
    if isinstance(value, int | float) and value >= 0:
        return int(value)
    raise ProviderError(f"The token endpoint's {name} is not a non-negative number.")


def _optional_token(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProviderError(f"The token endpoint's {name} is not a string.")
    return value


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _clean(value: Any) -> str | None:
    """A short printable version of a provider string, for messages and logs."""
    if not isinstance(value, str):
        return None
    text = "".join(c if c.isprintable() else " " for c in value).strip()
    return text[:_MAX_DESCRIPTION] or None


def _detail(error: ErrorBody) -> str:
    detail = error.error
    if error.description:
        detail += f": {error.description}"
    if error.subtype:
        detail += f" [{error.subtype}]"
    return detail


def _unavailable(what: str, status: int, error: ErrorBody | None) -> ProviderUnavailable:
    detail = f", {_detail(error)}" if error else ""
    return ProviderUnavailable(
        f"The {what} is unavailable (HTTP {status}{detail}).", provider_status=status
    )


def _config_hint(
    error: str, grant_type: GrantType, platform: Platform | None, redirect_uri: str | None
) -> str:
    if error == "redirect_uri_mismatch":
        used = f"redirect_uri {redirect_uri!r}" if redirect_uri is not None else "redirect_uri"
        return (
            f"The code was issued for another redirect URI than the {used} used for "
            f"platform {platform or 'unknown'}: iOS/Android codes are redeemed with '' "
            "(or 'postmessage' if the app also has a web version; "
            "GRANTKEEPER_MOBILE_REDIRECT_URI), "
            "web popup codes with 'postmessage'; check the platform the app sends."
        )
    if error == "invalid_client":
        return (
            "The client id or client secret is wrong or the client was deleted: check "
            "GRANTKEEPER_CLIENT_SECRETS_FILE against Cloud Console."
        )
    if error == "unauthorized_client":
        if grant_type == "refresh_token":
            return (
                "The refresh token was issued to another OAuth client: the client secrets file "
                "changed since this grant was stored."
            )
        return (
            "This client may not redeem the code: the app must request the server auth code for "
            "the client id in GRANTKEEPER_CLIENT_SECRETS_FILE."
        )
    if error == "invalid_scope":
        return "A requested scope was not granted to this grant."
    return ""
