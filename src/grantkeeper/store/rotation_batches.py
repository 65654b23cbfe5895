"""Key rotation in batches over the store (the queries are in :mod:`.rotation`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from grantkeeper.store import rotation
from grantkeeper.store.records import EncryptedRow
from grantkeeper.store.store_core import StoreCore


class KeyRotationBatches(StoreCore):
    """Counting, paging and re-encrypting the stored ciphertext."""

    async def count_by_key_id(self) -> dict[str, int]:
        """Number of stored encrypted values per key id (refresh and access tokens)."""
        async with self._read() as conn:
            return await rotation.count_by_key_id(conn)

    async def iter_encrypted_rows(
        self, batch_size: int = 500, *, only_stale: bool = True, after_id: int = 0
    ) -> AsyncIterator[list[EncryptedRow]]:
        """Batches of grant rows holding ciphertext, in id order, each its own short read.
        ``only_stale`` skips rows entirely under the primary key, so a rotation resumes."""
        primary = self._keyring.primary_kid
        while True:
            query = rotation.encrypted_rows_query(
                primary, after_id=after_id, batch_size=batch_size, only_stale=only_stale
            )
            async with self._read() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            yield [rotation.encrypted_row(row) for row in rows]
            after_id = rows[-1].id

    async def reencrypt_batch(self, rows: Sequence[EncryptedRow]) -> int:
        """Re-encrypt the rows' tokens under the primary key, in one transaction, without
        touching versions. Returns the number of values rewritten."""
        if not rows:
            return 0
        async with self._write() as conn:
            return await rotation.reencrypt_rows(conn, self._codec, [r.grant_id for r in rows])
