"""Reading users and grants (decrypted), counts by status, and RISC lookups by token hash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import sqlalchemy as sa

from grantkeeper.errors import TokenDecryptionError
from grantkeeper.store.fingerprints import normalize_sha512x2, refresh_token_prefix_sha256
from grantkeeper.store.records import Grant, GrantRef, User
from grantkeeper.store.store_core import GRANT_OF_CLIENT, StoreCore
from grantkeeper.store.tables import grants, users


class GrantReads(StoreCore):
    """Read-only queries, each one short transaction."""

    async def get_user(self, sub: str) -> User | None:
        async with self._read() as conn:
            row = (await conn.execute(users.select().where(users.c.sub == sub))).one_or_none()
        return None if row is None else self._codec.user(row)

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Users ordered by ``sub``."""
        query = users.select().order_by(users.c.sub).offset(offset).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [self._codec.user(row) for row in rows]

    async def page_users(
        self, *, after: str | None = None, limit: int = 50, status: str | None = None
    ) -> list[User]:
        """Up to ``limit`` users ordered by ``sub``, after the ``sub`` ``after`` (a cursor, so
        pages hold steady while users sign in); ``status``: only users with a grant in it."""
        query = users.select().order_by(users.c.sub).limit(limit)
        if after is not None:
            query = query.where(users.c.sub > after)
        if status is not None:
            held = sa.select(grants.c.sub).where(grants.c.status == status)
            query = query.where(users.c.sub.in_(held))
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [self._codec.user(row) for row in rows]

    async def get_grant(self, sub: str, client_id: str | None = None) -> Grant | None:
        """The user's grant for ``client_id``; without one, the most recently updated grant.

        Raises:
            TokenDecryptionError: a stored token cannot be decrypted with the key ring.
        """
        if client_id is not None:
            found = await self._read_first(GRANT_OF_CLIENT, {"sub": sub, "client_id": client_id})
            return None if found is None else self._codec.grant_from(found)
        async with self._read() as conn:
            row = (await conn.execute(self._grant_query(sub, None))).first()
        return None if row is None else self._codec.grant(row)

    async def list_grants(
        self, *, sub: str | None = None, status: str | None = None
    ) -> list[Grant]:
        """Grants (decrypted) ordered by id, optionally of one user or in one status."""
        query = grants.select().order_by(grants.c.id)
        if sub is not None:
            query = query.where(grants.c.sub == sub)
        if status is not None:
            query = query.where(grants.c.status == status)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [self._codec.grant(row) for row in rows]

    async def iter_grants(self, batch_size: int = 500) -> AsyncIterator[list[Grant | GrantRef]]:
        """Every grant, in pages of ``batch_size`` (one short transaction each), decrypted.

        A grant whose tokens cannot be decrypted comes as a :class:`GrantRef`, so one bad row
        (a key missing from the ring) does not stop a scan of all the others.
        """
        after = 0
        while True:
            query = grants.select().where(grants.c.id > after).order_by(grants.c.id)
            async with self._read() as conn:
                rows = (await conn.execute(query.limit(batch_size))).all()
            if not rows:
                return
            page: list[Grant | GrantRef] = []
            for row in rows:
                try:
                    page.append(self._codec.grant(row))
                except TokenDecryptionError:
                    page.append(GrantRef(sub=row.sub, client_id=row.client_id, status=row.status))
            yield page
            after = rows[-1].id

    async def count_by_status(self) -> dict[str, int]:
        """Number of grants per status (for metrics and the sweep summary)."""
        query = sa.select(grants.c.status, sa.func.count()).group_by(grants.c.status)
        async with self._read() as conn:
            return {status: count for status, count in (await conn.execute(query)).all()}

    async def find_grants_by_refresh_token(
        self, *, sha512x2: str | None = None, prefix: str | None = None
    ) -> list[GrantRef]:
        """Grants whose refresh token matches a RISC ``token-revoked`` identifier.

        ``sha512x2`` is the event's ``hash_base64_sha512_sha512`` value, ``prefix`` the first
        16 characters of the token (``prefix`` algorithm). No token is decrypted.
        """
        if (sha512x2 is None) == (prefix is None):
            raise ValueError("give exactly one of sha512x2 and prefix")
        if sha512x2 is not None:
            condition = grants.c.refresh_token_sha512x2 == normalize_sha512x2(sha512x2)
        else:
            assert prefix is not None
            condition = grants.c.refresh_token_prefix_sha256 == refresh_token_prefix_sha256(prefix)
        query = sa.select(grants.c.sub, grants.c.client_id, grants.c.status).where(condition)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [GrantRef(sub=r.sub, client_id=r.client_id, status=r.status) for r in rows]
