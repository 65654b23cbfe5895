"""Small builders for the store tests."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.clock import Clock, ManualClock
from grantkeeper.crypto import KeyRing
from grantkeeper.store import GrantStore, SignInRecord, UserProfile
from grantkeeper.store.engine import transaction

CLIENT = "server-1.apps.googleusercontent.com"
OTHER_CLIENT = "server-2.apps.googleusercontent.com"
OPENID = frozenset({"openid", "email", "profile"})
DRIVE = "https://www.googleapis.com/auth/drive.appdata"
PHOTOS = "https://www.googleapis.com/auth/photoslibrary.appendonly"


def raw_sql(store: GrantStore, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
    """A transaction on the store's own engine, for tests that look at (or tamper with) the
    tables directly, as someone holding the database would; the product has no such door."""
    return transaction(store._engine, write=write)


class OpensStores(Protocol):
    """The ``store_target`` fixture: opens further connections to the test's database."""

    backend: str
    url: str
    schema: str | None

    async def open(self, keyring: KeyRing, clock: Clock) -> GrantStore: ...


def profile(sub: str = "110169484474386276334", **claims: object) -> UserProfile:
    values: dict[str, object] = {
        "email": f"{sub}@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://example.com/ada.png",
        "locale": "pl",
    }
    values.update(claims)
    return UserProfile(sub=sub, **values)  # type: ignore[arg-type]


async def sign_in(
    store: GrantStore,
    clock: ManualClock,
    *,
    sub: str = "110169484474386276334",
    client_id: str = CLIENT,
    scopes: frozenset[str] | set[str] = OPENID,
    refresh_token: str | None = "1//0g-refresh-token-one",
    access_token: str = "ya29.access-token-one",
) -> SignInRecord:
    return await store.record_sign_in(
        profile(sub),
        client_id,
        set(scopes),
        refresh_token,
        access_token,
        clock.now() + timedelta(hours=1),
    )
