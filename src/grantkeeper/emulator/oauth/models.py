"""The emulator's records: users, clients, codes, tokens. Plain data; the rules live elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ClientType = Literal["web", "installed", "ios", "android"]


@dataclass
class User:
    """A test Google account. ``sub`` is 21 digits, like Google's."""

    sub: str
    email: str
    name: str
    given_name: str
    family_name: str
    picture: str
    locale: str = "en"
    hd: str | None = None
    email_verified: bool = True
    password_version: int = 0
    disabled: bool = False
    """Disabled by Google (RISC ``account-disabled``); refreshes fail until re-enabled."""

    def public(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "picture": self.picture,
            "locale": self.locale,
            "hd": self.hd,
            "disabled": self.disabled,
        }


@dataclass
class Client:
    """An OAuth client of the emulated Cloud project."""

    client_id: str
    type: ClientType
    client_secret: str | None = field(repr=False)
    project_id: str
    redirect_uris: list[str] = field(default_factory=list)
    javascript_origins: list[str] = field(default_factory=list)

    @property
    def needs_secret(self) -> bool:
        # Google: "client_secret is not applicable to requests from clients registered as
        # Android, iOS, or Chrome applications".
        return self.type in ("web", "installed")


@dataclass
class AuthCode:
    """A one-time authorization code and everything the consent decided."""

    code: str = field(repr=False)
    sub: str
    client_id: str
    """The client that must redeem it (``aud`` of the ID token)."""
    azp: str
    """The client that asked for it (a mobile client for server auth codes)."""
    scopes: frozenset[str]
    redirect_uris: frozenset[str]
    """Values of ``redirect_uri`` accepted at the exchange."""
    issued_at: datetime
    expires_at: datetime
    offline: bool
    issue_refresh_token: bool
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    time_limited_seconds: int | None = None
    used: bool = False


@dataclass(frozen=True)
class AccessTokenRecord:
    """What the emulator knows about a live access token (the token itself is the lookup key)."""

    sub: str
    client_id: str
    scopes: frozenset[str]
    """Full scope URLs (plus ``openid``), as granted."""
    expires_at: datetime
    azp: str = ""
    offline: bool = False
    refresh_token_id: str | None = None
    """Internal id of the refresh token that minted it, if any (never the token itself)."""


@dataclass
class RefreshTokenRecord:
    id: str
    sub: str
    client_id: str
    azp: str
    scopes: frozenset[str]
    issued_at: datetime
    last_used_at: datetime
    expires_at: datetime | None
    """Hard end of life (testing mode or a time-limited grant); ``None`` for ongoing access."""
    time_limited: bool = False
    revoked: bool = False
    predecessor: str | None = field(default=None, repr=False)
    """With rotation: the token this one replaced, alive until this one is first used."""
