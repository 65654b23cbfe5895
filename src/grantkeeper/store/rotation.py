"""Queries behind key rotation (``grantkeeper keys rotate|status``), one connection each.

Rotation re-encrypts in batches of rows picked by keyset pagination; a row already under the
primary key is skipped, so an interrupted rotation resumes where it stopped. Rows are re-read
under a lock and only their envelopes change: the version stays, so a refresh in flight keeps
its compare-and-swap.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.store.codec import GrantCodec
from grantkeeper.store.records import EncryptedRow
from grantkeeper.store.tables import grants


async def count_by_key_id(conn: AsyncConnection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for column in (grants.c.refresh_token_kid, grants.c.access_token_kid):
        query = sa.select(column, sa.func.count()).where(column.is_not(None)).group_by(column)
        for kid, count in (await conn.execute(query)).all():
            counts[kid] = counts.get(kid, 0) + count
    return counts


def encrypted_rows_query(
    primary_kid: str, *, after_id: int, batch_size: int, only_stale: bool
) -> sa.Select[Any]:
    query = (
        sa.select(
            grants.c.id,
            grants.c.sub,
            grants.c.client_id,
            grants.c.refresh_token_kid,
            grants.c.access_token_kid,
        )
        .where(grants.c.id > after_id)
        .order_by(grants.c.id)
        .limit(batch_size)
    )
    if only_stale:
        return query.where(
            sa.or_(
                grants.c.refresh_token_kid != primary_kid, grants.c.access_token_kid != primary_kid
            )
        )
    return query.where(
        sa.or_(grants.c.refresh_token.is_not(None), grants.c.access_token.is_not(None))
    )


def encrypted_row(row: sa.Row[Any]) -> EncryptedRow:
    return EncryptedRow(
        grant_id=row.id,
        sub=row.sub,
        client_id=row.client_id,
        refresh_token_kid=row.refresh_token_kid,
        access_token_kid=row.access_token_kid,
    )


async def reencrypt_rows(conn: AsyncConnection, codec: GrantCodec, ids: list[int]) -> int:
    """Re-encrypt the grants' tokens under the primary key; returns values rewritten."""
    query = (
        sa.select(
            grants.c.id,
            grants.c.sub,
            grants.c.client_id,
            grants.c.refresh_token,
            grants.c.access_token,
            grants.c.refresh_token_kid,
            grants.c.access_token_kid,
        )
        .where(grants.c.id.in_(ids))
        .with_for_update()
    )
    rewritten = 0
    updates: list[dict[str, Any]] = []
    for row in (await conn.execute(query)).all():
        envelopes = {"refresh_token": row.refresh_token, "access_token": row.access_token}
        values = codec.reencrypted_columns(row.sub, row.client_id, envelopes)
        if values:
            rewritten += len(values) // 2
            # Every row of the batch gets the same columns (an unchanged one keeps its value),
            # so the batch is one executemany instead of a statement per row.
            for field in envelopes:
                values.setdefault(field, envelopes[field])
                values.setdefault(f"{field}_kid", getattr(row, f"{field}_kid"))
            updates.append({"row_id": row.id, **values})
    if updates:
        await conn.execute(
            grants.update()
            .where(grants.c.id == sa.bindparam("row_id"))
            .values({name: sa.bindparam(name) for name in updates[0] if name != "row_id"}),
            updates,
        )
    return rewritten
