"""What the keeper answers: plain dataclasses with a stable JSON form (the HTTP API's bodies)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grantkeeper.store.records import AuditEvent, Grant, SignInRecord, User

#: What each platform's app must do to get a refresh token again.
OFFLINE_ADVICE = {
    "ios": (
        "Sign the user in again asking for offline access with consent: GIDSignIn with the "
        "server client id (GIDServerClientID) after the user removed the app's access, "
        "or prompt for consent again."
    ),
    "android": (
        "Request the server auth code with requestServerAuthCode(serverClientId, "
        "forceCodeForRefreshToken = true) so Google shows consent and issues a refresh token."
    ),
    "web": (
        "Start the code flow with access_type=offline and prompt=consent so Google issues a "
        "refresh token."
    ),
}


def iso_utc(value: datetime | None) -> str | None:
    """A time as ISO 8601 with ``Z`` for UTC, as every answer spells it."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_json(user: User) -> dict[str, Any]:
    return {
        "sub": user.sub,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "picture": user.picture,
        "locale": user.locale,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "hd": user.hd,
    }


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The answer to a sign-in: who the user is and what the grant can do now."""

    user: dict[str, Any]
    grant: dict[str, Any]
    replayed: bool = False
    """True when this is the cached answer to a retried POST of the same code."""

    @classmethod
    def from_record(cls, record: SignInRecord, platform: str) -> SignInResult:
        grant = record.grant
        body: dict[str, Any] = {
            "client_id": grant.client_id,
            "scopes": sorted(grant.scopes),
            "added_scopes": sorted(record.added_scopes),
            "offline": grant.offline,
            "refresh_token_expires_at": iso_utc(grant.refresh_token_expires_at),
            "new_user": record.new_user,
        }
        if not grant.offline:
            body["offline_reason"] = (
                "Google returned no refresh token with this sign-in and none is stored, so the "
                "backend cannot act while the user is away."
            )
            body["action"] = OFFLINE_ADVICE.get(platform, OFFLINE_ADVICE["web"])
        return cls(user=user_json(record.user), grant=body)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "grant": self.grant, "replayed": self.replayed}

    def dumps(self, idempotency_key_hash: str | None = None) -> str:
        """The answer as kept for a retried POST (``loads_bound`` marks it replayed), bound to the
        hash of the ``Idempotency-Key`` the first POST carried (None: no retry may have it)."""
        return json.dumps(
            {"user": self.user, "grant": self.grant, "key": idempotency_key_hash},
            separators=(",", ":"),
        )

    @classmethod
    def loads_bound(cls, text: str) -> tuple[SignInResult, str | None]:
        """The kept answer (marked replayed) and the key hash it is bound to."""
        data = json.loads(text)
        key = data.get("key")
        result = cls(user=data["user"], grant=data["grant"], replayed=True)
        return result, key if isinstance(key, str) else None

    @property
    def sub(self) -> str:
        return str(self.user["sub"])

    @property
    def offline(self) -> bool:
        return bool(self.grant["offline"])


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A fresh access token; the token itself is hidden from ``repr``."""

    token: str = field(repr=False)
    expires_at: datetime
    scopes: frozenset[str]
    sub: str
    refreshed: bool = False
    """True if this call refreshed the token (False: a stored token was fresh enough)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_at": iso_utc(self.expires_at),
            "scopes": sorted(self.scopes),
        }


@dataclass(frozen=True, slots=True)
class DisconnectOutcome:
    sub: str
    revoked_at_provider: bool
    pending: bool
    forgotten: bool
    grants: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "revoked_at_provider": self.revoked_at_provider,
            "revocation_pending": self.pending,
            "forgotten": self.forgotten,
            "grants": self.grants,
        }


def grant_json(grant: Grant) -> dict[str, Any]:
    """A grant's state for ``users show`` and the API: never a token."""
    return {
        "client_id": grant.client_id,
        "status": grant.status,
        "status_reason": grant.status_reason,
        "status_changed_at": iso_utc(grant.status_changed_at),
        "offline": grant.offline,
        "scopes": sorted(grant.scopes),
        "access_token_expires_at": iso_utc(grant.access_token_expires_at),
        "refresh_token_expires_at": iso_utc(grant.refresh_token_expires_at),
        "created_at": iso_utc(grant.created_at),
        "updated_at": iso_utc(grant.updated_at),
        "last_used_at": iso_utc(grant.last_used_at),
        "last_refreshed_at": iso_utc(grant.last_refreshed_at),
        "version": grant.version,
    }


@dataclass(frozen=True, slots=True)
class EventOutcome:
    event: str
    outcome: str
    sub: str | None
    grants_changed: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one delivery did (the route answers 202 with it)."""

    jti: str
    duplicate: bool
    events: list[EventOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "duplicate": self.duplicate,
            "events": [
                {"event": e.event, "outcome": e.outcome, "grants_changed": e.grants_changed}
                for e in self.events
            ],
        }


@dataclass(frozen=True, slots=True)
class UserGrants:
    """A user's profile and grants, as ``users list|show`` and the demo page show them."""

    user: User
    grants: list[Grant]

    @property
    def sub(self) -> str:
        return self.user.sub

    def to_json(self) -> dict[str, Any]:
        return {"user": user_json(self.user), "grants": [grant_json(g) for g in self.grants]}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log (never a token)."""

    event: AuditEvent

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {
            "id": e.id,
            "at": iso_utc(e.at),
            "kind": e.kind,
            "sub": e.sub,
            "client_id": e.client_id,
            "outcome": e.outcome,
            "detail": e.detail,
        }
