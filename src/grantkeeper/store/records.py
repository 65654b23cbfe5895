"""What the store hands out: plain, frozen dataclasses with tokens already decrypted.

Token fields are excluded from ``repr`` so that logging a grant never logs a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class GrantStatus(StrEnum):
    """Life-cycle states of a grant (the ``status`` column holds these values)."""

    ACTIVE = "active"
    """Usable for offline access (if a refresh token is stored)."""
    REVOKED = "revoked"
    """The provider refused the refresh token (``invalid_grant``) or told us it is revoked."""
    PENDING_REVOCATION = "pending_revocation"
    """Disconnected by the app; the revocation at the provider has yet to succeed."""
    DISCONNECTED = "disconnected"
    """Disconnected and revoked at the provider; tokens erased."""
    DISABLED = "disabled"
    """The provider disabled the account (RISC ``account-disabled``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserProfile:
    """The ID token's profile claims (OpenID Connect Core §5.1 plus Google's ``hd``)."""

    sub: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    picture: str | None = None
    locale: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    hd: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class User(UserProfile):
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """One user's grant to one client, tokens decrypted."""

    id: int
    sub: str
    client_id: str
    scopes: frozenset[str]
    refresh_token: str | None = field(repr=False)
    access_token: str | None = field(repr=False)
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    status: str
    status_reason: str | None
    status_changed_at: datetime | None
    version: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    last_refreshed_at: datetime | None

    @property
    def offline(self) -> bool:
        """Whether the grant can mint access tokens while the user is away."""
        return self.status == GrantStatus.ACTIVE and self.refresh_token is not None

    def lease_is_live(self, now: datetime) -> bool:
        return lease_is_live(self.lease_owner, self.lease_expires_at, now)


def lease_is_live(owner: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """A lease protects the grant until it expires; an expired one is free to take."""
    return owner is not None and expires_at is not None and expires_at > now


@dataclass(frozen=True, slots=True, kw_only=True)
class SignInRecord:
    """The outcome of :meth:`GrantStore.record_sign_in`."""

    user: User
    grant: Grant
    added_scopes: frozenset[str]
    """Scopes this sign-in granted that the grant did not have before."""
    new_user: bool
    refresh_token_stored: bool
    """A refresh token came with this sign-in and is now the stored one."""
    reactivated: bool
    """The grant was not active before and this sign-in's refresh token made it active."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    id: int
    at: datetime
    kind: str
    sub: str | None
    client_id: str | None
    outcome: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedRow:
    """A grant row as key rotation sees it: identity and key ids, no plaintext."""

    grant_id: int
    sub: str
    client_id: str
    refresh_token_kid: str | None
    access_token_kid: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRef:
    """Just enough to name a grant (RISC lookups)."""

    sub: str
    client_id: str
    status: str


def merge_scopes(stored: frozenset[str], granted: set[str] | frozenset[str]) -> frozenset[str]:
    """Incremental authorization: the grant's scopes are the union of every sign-in's."""
    return stored | frozenset(granted)


def scopes_to_column(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


def scopes_from_column(value: str | None) -> frozenset[str]:
    return frozenset(value.split()) if value else frozenset()
