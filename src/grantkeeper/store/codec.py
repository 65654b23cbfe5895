"""Between rows and records: tokens are encrypted on the way in and decrypted on the way out.

The associated data of every envelope is ``(sub, client_id, field)``, so the codec is the one
place that knows how a grant's identity binds its ciphertexts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from grantkeeper.crypto import KeyRing
from grantkeeper.store.fingerprints import refresh_token_prefix_sha256, refresh_token_sha512x2
from grantkeeper.store.records import Grant, User, UserProfile, scopes_from_column
from grantkeeper.store.tables import users

REFRESH_TOKEN = "refresh_token"
ACCESS_TOKEN = "access_token"
PROFILE_FIELDS = tuple(f.name for f in dataclasses.fields(UserProfile) if f.name != "sub")

#: Display claims longer than their column are shortened (ending in an ellipsis); a value of
#: these that long is not a valid address, domain or language tag, so it is not stored at all.
_SHORTENED = frozenset({"name", "given_name", "family_name"})
_ELLIPSIS = "\u2026"


def fit_profile(profile: UserProfile) -> tuple[UserProfile, list[str]]:
    """``profile`` fitted to the ``users`` columns, and the names of the claims changed.

    PostgreSQL refuses a value longer than its column and SQLite keeps it, so without this the
    same sign-in fails on one store (after the code is spent) and succeeds on the other. The
    limits are the columns' own, so a migration that widens one widens this too.
    """
    changed: dict[str, Any] = {}
    for name in PROFILE_FIELDS:
        value = getattr(profile, name)
        limit = getattr(users.c[name].type, "length", None)
        if not isinstance(value, str) or limit is None or len(value) <= limit:
            continue
        changed[name] = value[: limit - 1] + _ELLIPSIS if name in _SHORTENED else None
    if len(profile.sub) > 255:
        # OIDC Core §2: sub "MUST NOT exceed 255 ASCII characters"; ID-token checks refuse it.
        raise ValueError("sub is longer than 255 characters")
    return dataclasses.replace(profile, **changed), sorted(changed)


class GrantCodec:
    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def refresh_columns(self, sub: str, client_id: str, token: str) -> dict[str, Any]:
        """The refresh token's envelope, key id and RISC fingerprints."""
        return {
            "refresh_token": self.keyring.encrypt(token, (sub, client_id, REFRESH_TOKEN)),
            "refresh_token_kid": self.keyring.primary_kid,
            "refresh_token_sha512x2": refresh_token_sha512x2(token),
            "refresh_token_prefix_sha256": refresh_token_prefix_sha256(token),
        }

    def access_columns(
        self, sub: str, client_id: str, token: str, expires_at: datetime
    ) -> dict[str, Any]:
        return {
            "access_token": self.keyring.encrypt(token, (sub, client_id, ACCESS_TOKEN)),
            "access_token_kid": self.keyring.primary_kid,
            "access_token_expires_at": expires_at,
        }

    def reencrypted_columns(
        self, sub: str, client_id: str, envelopes: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """New envelopes under the primary key for those of ``envelopes`` (by field) that
        are not under it yet, with their ``*_kid`` columns."""
        values: dict[str, Any] = {}
        for field, envelope in envelopes.items():
            if envelope is None or self.keyring.is_primary(envelope):
                continue
            context = (sub, client_id, field)
            values[field] = self.keyring.encrypt(self.keyring.decrypt(envelope, context), context)
            values[f"{field}_kid"] = self.keyring.primary_kid
        return values

    def _decrypt(self, envelope: str | None, sub: str, client_id: str, field: str) -> str | None:
        if envelope is None:
            return None
        return self.keyring.decrypt(envelope, (sub, client_id, field))

    def grant(self, row: sa.Row[Any]) -> Grant:
        """The row as a :class:`Grant`; :class:`TokenDecryptionError` if a token won't open."""
        return self.grant_from(row._mapping)

    def grant_from(self, r: Mapping[Any, Any]) -> Grant:
        """:meth:`grant` of a row given by column name."""
        sub, client_id = r["sub"], r["client_id"]
        return Grant(
            id=r["id"],
            sub=sub,
            client_id=client_id,
            scopes=scopes_from_column(r["scopes"]),
            refresh_token=self._decrypt(r["refresh_token"], sub, client_id, REFRESH_TOKEN),
            access_token=self._decrypt(r["access_token"], sub, client_id, ACCESS_TOKEN),
            access_token_expires_at=r["access_token_expires_at"],
            refresh_token_expires_at=r["refresh_token_expires_at"],
            status=r["status"],
            status_reason=r["status_reason"],
            status_changed_at=r["status_changed_at"],
            version=r["version"],
            lease_owner=r["lease_owner"],
            lease_expires_at=r["lease_expires_at"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            last_used_at=r["last_used_at"],
            last_refreshed_at=r["last_refreshed_at"],
        )

    @staticmethod
    def user(row: sa.Row[Any] | Mapping[str, Any]) -> User:
        """A user's row (or its columns by name) as a :class:`User`."""
        r = row if isinstance(row, Mapping) else row._mapping
        return User(
            sub=r["sub"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            **{name: r[name] for name in PROFILE_FIELDS},
        )
