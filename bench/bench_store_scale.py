"""The store at scale: ``keys rotate`` and a report-only ``sweep`` over GRANTS grants, on SQLite
and PostgreSQL, with the memory each takes beyond what the process held before.

Grants are written straight into the store in batches (sealed by the store's own codec, bound
to their rows as every grant is), so setting up 100,000 of them takes seconds, not 100,000
sign-ins. Goals (issue 9): rotate >= 5,000 grants/s, report-only sweep >= 10,000 grants/s, and
memory that does not grow with the number of grants (compare the two sizes printed).

  python bench/bench_store_scale.py [--grants 100000] [--small 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from benchlib import POSTGRES, drop_schema, postgres_schema

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.keeper import Keeper, SweepOptions
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore
from grantkeeper.store.tables import grants, users

CLIENT = "bench-web.apps.googleusercontent.com"
BATCH = 5000


class PeakRss:
    """Samples this process's RSS every 20 ms while it runs; ``grown`` is peak minus start."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def grown_mib(self) -> float:
        return (self.peak - self.start) / 2**20


async def fill(store: GrantStore, count: int, now: datetime) -> None:
    codec = store._codec  # the store's own sealing, so every envelope is bound to its row
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        user_rows: list[dict[str, Any]] = []
        grant_rows: list[dict[str, Any]] = []
        for i in range(done, done + size):
            sub = f"{100000000000000000000 + i}"
            user_rows.append(
                {"sub": sub, "email": f"u{i}@example.com", "created_at": now, "updated_at": now}
            )
            grant_rows.append(
                {
                    "sub": sub,
                    "client_id": CLIENT,
                    "scopes": "openid email profile",
                    "version": 1,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                    **codec.refresh_columns(sub, CLIENT, "1//" + secrets.token_urlsafe(60)),
                    **codec.access_columns(
                        sub, CLIENT, "ya29." + secrets.token_urlsafe(120), now + timedelta(hours=1)
                    ),
                }
            )
        async with store._write() as conn:
            await conn.execute(users.insert(), user_rows)
            await conn.execute(grants.insert(), grant_rows)
        done += size


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    with PeakRss() as rss:
        began = time.perf_counter()
        await work()
        seconds = time.perf_counter() - began
    return seconds, rss.grown_mib


async def run(label: str, url: str, schema: str | None, count: int) -> dict[str, float]:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    old_key, new_key = generate_key("old"), generate_key("new")
    old = KeyRing.from_strings([old_key])
    async with await GrantStore.open(url, old, clock, schema=schema, migrate=True) as store:
        await fill(store, count, clock.now())
    # The new ring: a new primary, and the old key to read what rotate rewrites.
    ring = KeyRing.from_strings([new_key, old_key])
    async with (
        await GrantStore.open(url, ring, clock, schema=schema) as store,
        Keeper(
            Settings(_env_file=None, data_dir=Path(tempfile.gettempdir())),
            clock=clock,
            store=store,
        ) as keeper,
    ):
        # What `grantkeeper keys rotate` and a report-only `grantkeeper sweep` call.
        rotate_s, rotate_mib = await timed(lambda: keeper.rotate_keys(batch_size=1000))
        sweep_s, sweep_mib = await timed(lambda: keeper.sweep(SweepOptions(), report_only=True))
    print(
        f"  [{label} {count:>7,} grants] keys rotate {count / rotate_s:8,.0f} grants/s "
        f"(+{rotate_mib:5.1f} MiB)   report-only sweep {count / sweep_s:8,.0f} grants/s "
        f"(+{sweep_mib:5.1f} MiB)"
    )
    return {
        "rotate": count / rotate_s,
        "sweep": count / sweep_s,
        "rotate_mib": rotate_mib,
        "sweep_mib": sweep_mib,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    args = parser.parse_args()
    print(
        f"Store at scale ({args.small:,} and {args.grants:,} grants; memory is the peak RSS "
        "growth during the operation)"
    )
    results: dict[str, dict[str, float]] = {}
    for size in (args.small, args.grants):
        with tempfile.TemporaryDirectory(prefix="gk-scale-") as tmp:
            db = Path(tmp) / "scale.sqlite3"
            results[f"sqlite {size}"] = asyncio.run(run("sqlite", f"sqlite:///{db}", None, size))
        schema = postgres_schema("gk_scale")
        if schema is None:
            print("  [postgresql] skipped: not reachable at 127.0.0.1:5432")
            continue
        try:
            results[f"postgresql {size}"] = asyncio.run(run("postgresql", POSTGRES, schema, size))
        finally:
            drop_schema(schema)
    print("Goals (issue 9), at the larger size:")
    for label in ("sqlite", "postgresql"):
        big = results.get(f"{label} {args.grants}")
        small = results.get(f"{label} {args.small}")
        if big is None or small is None:
            continue
        for what, goal in (("rotate", 5000), ("sweep", 10000)):
            met = "met" if big[what] >= goal else "NOT met"
            growth = big[f"{what}_mib"] - small[f"{what}_mib"]
            print(
                f"  {label}: {what:<6} {big[what]:9,.0f} grants/s  goal >= {goal:,}  {met};"
                f"  memory {small[f'{what}_mib']:.1f} -> {big[f'{what}_mib']:.1f} MiB "
                f"({growth:+.1f} MiB for {args.grants / args.small:.0f}x the grants)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
