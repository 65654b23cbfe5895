"""Bulk seeding of grants straight into the tables (thousands in one transaction), with real
envelopes from the store's key ring, and the plaintexts they must decrypt to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grantkeeper.store import GrantStore
from grantkeeper.store.fingerprints import refresh_token_prefix_sha256, refresh_token_sha512x2
from grantkeeper.store.tables import grants, users

from ..store.helpers import raw_sql

CLIENT = "seed-server.apps.googleusercontent.com"


def refresh_of(sub: str) -> str:
    return f"1//0g-seeded-refresh-{sub}"


def access_of(sub: str) -> str:
    return f"ya29.seeded-access-{sub}"


async def seed_grants(store: GrantStore, count: int, *, start: int = 0) -> list[str]:
    """``count`` users with one active grant each, encrypted under the ring's primary key."""
    ring = store.keyring
    now = datetime.now(UTC)
    subs = [f"{100000000000000000000 + start + n}" for n in range(count)]
    user_rows = [{"sub": sub, "created_at": now, "updated_at": now} for sub in subs]
    grant_rows = []
    for sub in subs:
        refresh, access = refresh_of(sub), access_of(sub)
        grant_rows.append(
            {
                "sub": sub,
                "client_id": CLIENT,
                "scopes": "openid",
                "refresh_token": ring.encrypt(refresh, (sub, CLIENT, "refresh_token")),
                "refresh_token_kid": ring.primary_kid,
                "refresh_token_sha512x2": refresh_token_sha512x2(refresh),
                "refresh_token_prefix_sha256": refresh_token_prefix_sha256(refresh),
                "access_token": ring.encrypt(access, (sub, CLIENT, "access_token")),
                "access_token_kid": ring.primary_kid,
                "access_token_expires_at": now + timedelta(hours=1),
                "status": "active",
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with raw_sql(store, write=True) as conn:
        await conn.execute(users.insert(), user_rows)
        await conn.execute(grants.insert(), grant_rows)
    return subs
