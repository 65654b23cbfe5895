"""The shared refresh cooldown of each grant (see :mod:`grantkeeper.keeper.cooldown`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from grantkeeper.store.compiled_writes import hot
from grantkeeper.store.store_core import StoreCore
from grantkeeper.store.tables import grant_cooldowns
from grantkeeper.store.webhook_outbox import Outbox, enqueue, outbox_for


@dataclass(frozen=True, slots=True)
class Cooldown:
    failures: int
    """Consecutive transient refresh failures."""
    until: datetime
    """No refresh is tried before this."""
    last_error: str


class GrantCooldowns(StoreCore):
    async def get_cooldown(self, sub: str, client_id: str) -> Cooldown | None:
        query = sa.select(
            grant_cooldowns.c.failures, grant_cooldowns.c.until, grant_cooldowns.c.last_error
        ).where(grant_cooldowns.c.sub == sub, grant_cooldowns.c.client_id == client_id)
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return Cooldown(row.failures, row.until, row.last_error) if row else None

    async def record_refresh_failure(
        self,
        sub: str,
        client_id: str,
        error_code: str,
        *,
        base: timedelta,
        cap: timedelta,
        outbox: Outbox[Cooldown] | None = None,
    ) -> Cooldown:
        """One more consecutive failure: the cooldown is ``base`` doubled per earlier failure,
        at most ``cap``, from now. One transaction, so concurrent instances count each one;
        the notifications ``outbox`` makes of the new cooldown are written in it too."""
        now = self._clock.now()
        where = (grant_cooldowns.c.sub == sub, grant_cooldowns.c.client_id == client_id)
        async with self._write() as conn:
            await conn.execute(
                self._insert(grant_cooldowns)
                .values(
                    sub=sub,
                    client_id=client_id,
                    failures=0,
                    until=now,
                    last_error=error_code[:64],
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["sub", "client_id"])
            )
            query = sa.select(grant_cooldowns.c.failures).where(*where)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            failures = int((await conn.execute(query)).scalar_one()) + 1
            wait = min(cap, base * (2 ** min(failures - 1, 30)))
            until = now + wait
            await conn.execute(
                grant_cooldowns.update()
                .where(*where)
                .values(failures=failures, until=until, last_error=error_code[:64], updated_at=now)
            )
            cooldown = Cooldown(failures, until, error_code)
            await enqueue(conn, outbox_for(outbox, cooldown))
        return cooldown


#: A refresh succeeded: forget the grant's failures (in the refresh's transaction). Built once.
COOLDOWN_CLEARED = hot(
    grant_cooldowns.delete().where(
        grant_cooldowns.c.sub == sa.bindparam("sub", type_=sa.String()),
        grant_cooldowns.c.client_id == sa.bindparam("client_id", type_=sa.String()),
    )
)
