"""Encryption key life cycle: re-encrypt every token under the primary, count.

``GRANTKEEPER_ENCRYPTION_KEYS`` is a ring; the first key encrypts, all decrypt. Rotating is:

1. ``grantkeeper keys generate`` → put the new key *first* in the ring, keep the old ones, and
   restart (or roll) the service: new writes use the new key, old rows still decrypt;
2. ``grantkeeper keys rotate`` → re-encrypts every stored token still under an old key, in
   batches (each one short transaction that locks only its rows, so the service keeps serving
   and an in-flight refresh is neither lost nor overwritten); an interrupted run is simply
   run again — it picks up the rows still under old keys;
3. ``grantkeeper keys status`` → when no row is counted under an old key id, drop that key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from grantkeeper.store import GrantStore

__all__ = ["KeyStatus", "RotationReport", "key_ring_problems", "rotate", "status"]

log = logging.getLogger("grantkeeper.keeper")

AUDIT_KIND = "key_rotation"


@dataclass(frozen=True, slots=True)
class KeyStatus:
    primary: str
    ring: tuple[str, ...]
    values_by_kid: dict[str, int]
    """Encrypted values (refresh and access tokens) stored under each key id."""

    @property
    def stale(self) -> int:
        """Values not under the primary key (what ``rotate`` would rewrite)."""
        return sum(n for kid, n in self.values_by_kid.items() if kid != self.primary)

    @property
    def unknown(self) -> list[str]:
        """Key ids in use that the ring lacks: those values cannot be decrypted."""
        return sorted(kid for kid in self.values_by_kid if kid not in self.ring)

    @property
    def retirable(self) -> list[str]:
        """Ring keys no stored value uses any more (safe to remove from the ring)."""
        return [kid for kid in self.ring if kid != self.primary and not self.values_by_kid.get(kid)]

    def to_json(self) -> dict[str, object]:
        return {
            "primary": self.primary,
            "ring": list(self.ring),
            "values_by_kid": dict(sorted(self.values_by_kid.items())),
            "stale": self.stale,
            "unknown": self.unknown,
            "retirable": self.retirable,
        }


async def status(store: GrantStore) -> KeyStatus:
    ring = store.keyring
    return KeyStatus(
        primary=ring.primary_kid, ring=ring.kids, values_by_kid=await store.count_by_key_id()
    )


@dataclass(frozen=True, slots=True)
class RotationReport:
    primary: str
    rewritten: int
    """Encrypted values rewritten by this run."""
    batches: int
    remaining: int
    """Values still under another key afterwards (written by a racing old-key process)."""


Progress = Callable[[int], None]


async def rotate(
    store: GrantStore,
    *,
    batch_size: int = 500,
    pause: float = 0.0,
    on_progress: Progress | None = None,
) -> RotationReport:
    """Re-encrypt every token not under the primary key, ``batch_size`` grants at a time.

    Args:
        pause: seconds to wait between batches, to go easy on a busy database.
        on_progress: called after each batch with the number of values it rewrote.

    Raises:
        TokenDecryptionError: a row is under a key the ring does not hold (nothing after it
            is touched; ``keys status`` names the key id).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    primary = store.keyring.primary_kid
    await store.append_audit(AUDIT_KIND, outcome="started", detail={"primary": primary})
    rewritten = 0
    batches = 0
    async for rows in store.iter_encrypted_rows(batch_size, only_stale=True):
        done = await store.reencrypt_batch(rows)
        rewritten += done
        batches += 1
        if on_progress is not None:
            on_progress(done)
        if pause:
            await asyncio.sleep(pause)
    after = await status(store)
    report = RotationReport(
        primary=primary, rewritten=rewritten, batches=batches, remaining=after.stale
    )
    await store.append_audit(
        AUDIT_KIND,
        outcome="completed",
        detail={
            "primary": primary,
            "rewritten": rewritten,
            "batches": batches,
            "remaining": report.remaining,
        },
    )
    return report


async def key_ring_problems(store: GrantStore) -> list[str]:
    """Stored tokens sealed with a key the ring lacks cannot be read: ``/readyz`` says so
    (checked once per keeper; a scan of the grants, so not on every open of a CLI command)
    rather than the first refresh failing."""
    known = set(store.keyring.kids)
    counts = await store.count_by_key_id()
    missing = {kid: n for kid, n in counts.items() if kid not in known}
    problems = [
        f"token_undecryptable: {count} stored token(s) were encrypted with key id {kid!r}, "
        "which GRANTKEEPER_ENCRYPTION_KEYS does not hold"
        for kid, count in sorted(missing.items())
    ]
    for problem in problems:
        log.error("%s", problem)
    return problems
