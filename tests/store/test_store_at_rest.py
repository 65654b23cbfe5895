"""What an attacker with the database (file or dump) sees: never a token."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from grantkeeper.clock import ManualClock
from grantkeeper.errors import TokenDecryptionError
from grantkeeper.store import GrantStore, refresh_token_prefix_sha256, refresh_token_sha512x2
from grantkeeper.store.tables import grants

from .helpers import CLIENT, OTHER_CLIENT, OpensStores, raw_sql, sign_in

pytestmark = pytest.mark.anyio

REFRESH = "1//0gPLAINTEXT-REFRESH-TOKEN-Zq81"
ACCESS = "ya29.PLAINTEXT-ACCESS-TOKEN-Lx42"
ROTATED = "1//0gPLAINTEXT-ROTATED-TOKEN-Pp07"
FRESH = "ya29.PLAINTEXT-FRESH-TOKEN-Mm11"
SECRETS = (REFRESH, ACCESS, ROTATED, FRESH)


async def dump_postgres(store: GrantStore, schema: str) -> str:
    """Every column of every table in the schema, as text: what pg_dump would show."""
    parts: list[str] = []
    async with raw_sql(store, write=False) as conn:
        tables = (
            (
                await conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": schema},
                )
            )
            .scalars()
            .all()
        )
        assert {"gk_users", "gk_grants", "gk_audit_events", "gk_signin_replays"} <= set(tables)
        for table in tables:
            rows = await conn.execute(sa.text(f'SELECT t::text FROM "{schema}"."{table}" AS t'))
            parts.extend(rows.scalars().all())
    return "\n".join(parts)


def dump_sqlite(url: str) -> bytes:
    """The database file and its write-ahead log, byte for byte."""
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_no_token_plaintext_anywhere_in_the_database(
    store: GrantStore, store_target: OpensStores, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock, refresh_token=REFRESH, access_token=ACCESS)
    assert await store.save_refreshed(
        signed.grant.sub, CLIENT, signed.grant.version, FRESH, store_clock.now(), ROTATED
    )
    await store.remember_signin_response("c0de" * 16, '{"user": {"sub": "x"}}', sub="x")
    await store.append_audit("refresh", sub=signed.grant.sub, detail={"ok": True})

    if store_target.backend == "sqlite":
        raw = dump_sqlite(store_target.url)
        assert raw  # the dump is real
        assert signed.grant.sub.encode() in raw
        for secret in SECRETS:
            assert secret.encode() not in raw
            assert secret[:16].encode() not in raw  # not even the RISC prefix
    else:
        assert store_target.schema is not None
        text = await dump_postgres(store, store_target.schema)
        assert signed.grant.sub in text
        for secret in SECRETS:
            assert secret not in text
            assert secret[:16] not in text

    grant = await store.get_grant(signed.grant.sub, CLIENT)
    assert grant is not None
    assert (grant.refresh_token, grant.access_token) == (ROTATED, FRESH)
    assert ROTATED not in repr(grant)
    assert FRESH not in repr(grant)


async def copy_column(store: GrantStore, column: str, src: str, dst: str, dst_column: str) -> None:
    async with raw_sql(store, write=True) as conn:
        value = (
            await conn.execute(sa.select(grants.c[column]).where(grants.c.client_id == src))
        ).scalar_one()
        await conn.execute(
            grants.update().where(grants.c.client_id == dst).values({dst_column: value})
        )


async def test_a_ciphertext_copied_to_another_grant_fails_to_decrypt(
    store: GrantStore, store_clock: ManualClock
) -> None:
    victim = await sign_in(store, store_clock, client_id=CLIENT, refresh_token=REFRESH)
    await sign_in(store, store_clock, client_id=OTHER_CLIENT, refresh_token="1//0g-attacker")
    await copy_column(store, "refresh_token", CLIENT, OTHER_CLIENT, "refresh_token")

    with pytest.raises(TokenDecryptionError) as caught:
        await store.get_grant(victim.grant.sub, OTHER_CLIENT)
    assert REFRESH not in str(caught.value)
    # The victim's own row is intact.
    intact = await store.get_grant(victim.grant.sub, CLIENT)
    assert intact is not None
    assert intact.refresh_token == REFRESH


async def test_a_ciphertext_copied_to_another_user_fails_to_decrypt(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock, sub="alice", refresh_token=REFRESH)
    await sign_in(store, store_clock, sub="mallory", refresh_token="1//0g-mallory")
    async with raw_sql(store, write=True) as conn:
        value = (
            await conn.execute(sa.select(grants.c.refresh_token).where(grants.c.sub == "alice"))
        ).scalar_one()
        await conn.execute(
            grants.update().where(grants.c.sub == "mallory").values(refresh_token=value)
        )
    with pytest.raises(TokenDecryptionError):
        await store.get_grant("mallory", CLIENT)


async def test_a_ciphertext_copied_to_another_field_fails_to_decrypt(
    store: GrantStore, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock, refresh_token=REFRESH, access_token=ACCESS)
    await copy_column(store, "refresh_token", CLIENT, CLIENT, "access_token")
    with pytest.raises(TokenDecryptionError):
        await store.get_grant(signed.grant.sub, CLIENT)


async def test_risc_fingerprints_find_the_grant_without_decrypting(
    store: GrantStore, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock, refresh_token=REFRESH)
    by_hash = await store.find_grants_by_refresh_token(sha512x2=refresh_token_sha512x2(REFRESH))
    by_prefix = await store.find_grants_by_refresh_token(prefix=REFRESH[:16])
    assert [(r.sub, r.client_id) for r in by_hash] == [(signed.grant.sub, CLIENT)]
    assert by_prefix == by_hash
    # Senders that use base64url without padding still match.
    urlsafe = refresh_token_sha512x2(REFRESH).replace("+", "-").replace("/", "_").rstrip("=")
    assert await store.find_grants_by_refresh_token(sha512x2=urlsafe) == by_hash
    assert await store.find_grants_by_refresh_token(prefix="1//0gSOMEONE-ELSE") == []
    with pytest.raises(ValueError):
        await store.find_grants_by_refresh_token()
    assert refresh_token_prefix_sha256(REFRESH) == refresh_token_prefix_sha256(REFRESH[:16])


def test_google_double_hash_definition() -> None:
    """``hash_base64_sha512_sha512``: standard base64 of SHA-512(SHA-512(token))."""
    import base64
    import hashlib

    expected = base64.b64encode(
        hashlib.sha512(hashlib.sha512(b"1//token").digest()).digest()
    ).decode()
    assert refresh_token_sha512x2("1//token") == expected
    assert len(expected) == 88
