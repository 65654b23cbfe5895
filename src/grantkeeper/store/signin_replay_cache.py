"""The sign-in replay cache: the answer to a sign-in kept under the code's hash, so that a
retried POST gets it again without a second exchange of the one-time code."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from grantkeeper.errors import StoreUnavailable
from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.records import SignInRecord
from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import signin_replays

log = logging.getLogger("grantkeeper.store")

#: The answer stored while a sign-in is still being worked on (see ``claim_signin``).
PENDING = ""
#: How often a store deletes expired answers as a side effect of a sign-in.
PURGE_EVERY = timedelta(minutes=1)
#: The expired answers (parameter ``now``), built once: it runs inside a sign-in's write.
PURGE_EXPIRED = hot(
    signin_replays.delete().where(
        signin_replays.c.expires_at <= sa.bindparam("now", type_=signin_replays.c.expires_at.type)
    )
)


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """The answer to keep under a sign-in's code, written in the sign-in's own transaction
    (``GrantStore.record_sign_in``): the grant and the answer to a retry land together."""

    code_hash: str
    ttl: timedelta
    answer: Callable[[SignInRecord], str]
    """Builds the answer's JSON from the stored record (pure; runs inside the transaction)."""


class SignInReplayCache(StoreCore):
    """Cached sign-in answers by code hash, expiring after a TTL."""

    _replays_purged_at: datetime | None = None

    async def claim_signin(self, code_hash: str, ttl: timedelta) -> bool:
        """Claim the exchange of this code for this instance: ``True`` if no instance is
        working on it or has answered it. The claim (answer :data:`PENDING`) lapses after
        ``ttl`` if its holder dies; :meth:`remember_signin_response` replaces it.

        One statement: an expired entry for the code is taken over in place, so expired
        entries need not be purged first (:meth:`purge_expired_signin_responses` does that
        now and then)."""
        now = self._clock.now()
        async with self._write_one(direct=True) as conn:
            entry = await conn.execute(
                self._upsert(only_expired=True), self._row(code_hash, None, PENDING, now, ttl)
            )
            claimed = entry.first() is not None
        if self._purge_due(now):
            # Its own write: the claim is committed (on PostgreSQL in autocommit), so a failed
            # purge must not make this call fail and leave the claim standing unanswered.
            try:
                async with self._write(direct=True) as conn:
                    await self._purge_now_and_then(conn, now)
            except StoreUnavailable as error:
                log.warning("purging expired sign-in answers failed: %s", error.message)
        return claimed

    def _purge_due(self, now: datetime) -> bool:
        return self._replays_purged_at is None or now - self._replays_purged_at >= PURGE_EVERY

    async def _purge_now_and_then(self, conn: AsyncConnection, now: datetime) -> None:
        # Expired answers are dead weight, not a hazard (reads filter on expires_at and claims
        # take them over): delete them once a minute per store, not on every sign-in.
        if not self._purge_due(now):
            return
        self._replays_purged_at = now
        await conn.execute(PURGE_EXPIRED, {"now": now})

    async def release_signin_claim(self, code_hash: str) -> None:
        """Drop this code's claim if no answer replaced it (the sign-in failed)."""
        async with self._write() as conn:
            await conn.execute(
                signin_replays.delete().where(
                    signin_replays.c.code_hash == code_hash,
                    signin_replays.c.response_json == PENDING,
                )
            )

    _upserts: dict[tuple[bool, str], Any] | None = None

    def _upsert(self, *, only_expired: bool = False, prefix: str = "") -> Any:
        """Write a code's entry, replacing the one there (``only_expired``: only if it has
        expired, so a live claim or answer is never taken over; the code's hash comes back
        when the entry was taken). Built once per store (its dialect), parameters per call
        (:meth:`_row`, with the same ``prefix``: a statement that also updates a table with a
        ``sub`` column needs other names for these): one runs in every sign-in."""
        if self._upserts is None:
            self._upserts = {}
        key = (only_expired, prefix)
        if key not in self._upserts:
            at = signin_replays.c.created_at.type
            now = sa.bindparam(prefix + "now", type_=at)
            statement = self._insert(signin_replays).values(
                code_hash=sa.bindparam(prefix + "code_hash", type_=signin_replays.c.code_hash.type),
                sub=sa.bindparam(prefix + "sub", type_=signin_replays.c.sub.type),
                response_json=sa.bindparam(
                    prefix + "response_json", type_=signin_replays.c.response_json.type
                ),
                created_at=now,
                expires_at=sa.bindparam(prefix + "expires_at", type_=at),
            )
            replaced = ("sub", "response_json", "created_at", "expires_at")
            upsert = statement.on_conflict_do_update(
                index_elements=["code_hash"],
                set_={column: statement.excluded[column] for column in replaced},
                where=signin_replays.c.expires_at <= now if only_expired else None,
            )
            # RETURNING, not rowcount: psycopg reports -1 for this statement.
            self._upserts[key] = hot(
                upsert.returning(signin_replays.c.code_hash) if only_expired else upsert
            )
        return self._upserts[key]

    @staticmethod
    def _row(
        code_hash: str,
        sub: str | None,
        response_json: str,
        now: datetime,
        ttl: timedelta,
        prefix: str = "",
    ) -> dict[str, Any]:
        return {
            prefix + "code_hash": code_hash,
            prefix + "sub": sub,
            prefix + "response_json": response_json,
            prefix + "now": now,
            prefix + "expires_at": now + ttl,
        }

    async def _remember(
        self,
        conn: AsyncConnection,
        now: datetime,
        code_hash: str,
        response_json: str,
        ttl: timedelta,
        sub: str | None,
    ) -> None:
        await conn.execute(self._upsert(), self._row(code_hash, sub, response_json, now, ttl))

    async def remember_signin_response(
        self,
        code_hash: str,
        response_json: str,
        ttl: timedelta = timedelta(minutes=10),
        *,
        sub: str | None = None,
    ) -> None:
        """Cache the answer to a sign-in under the code's hash (see ``signin_code_hash``) so a
        retried POST gets it again without a second exchange. Also purges expired entries
        (now and then)."""
        now = self._clock.now()
        async with self._write() as conn:
            await self._remember(conn, now, code_hash, response_json, ttl, sub)
            await self._purge_now_and_then(conn, now)

    async def recall_signin_response(self, code_hash: str) -> str | None:
        """The cached answer for this code hash, unless it has expired; :data:`PENDING` while
        another instance is working on it."""
        query = sa.select(signin_replays.c.response_json).where(
            signin_replays.c.code_hash == code_hash,
            signin_replays.c.expires_at > self._clock.now(),
        )
        async with self._read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def purge_expired_signin_responses(self) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                signin_replays.delete().where(signin_replays.c.expires_at <= self._clock.now())
            )
        return result.rowcount
