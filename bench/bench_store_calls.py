"""The store alone, in this process: CPU per call of what a sign-in, a token read and a refresh
ask of the grant store, on SQLite and on PostgreSQL, CONCURRENCY calls at once.

- sign-in: the claim on the code, then the user, the grant, its audit event and the answer to
  a retry in one transaction (``claim_signin`` + ``record_sign_in``);
- read: the grant by its key, then the service key's hand-out (``get_grant`` +
  ``record_hand_out``; hand-outs of one moment share a write);
- refresh: the lease, then the token with its two audit events and the end of any cooldown
  (``try_acquire_lease`` + ``save_refreshed``).

No HTTP and no provider: this is the part of each request the store costs, for profiling the
store on its own. The PostgreSQL figure is this process's CPU (not the server's).

  python bench/bench_store_calls.py [--calls 2000] [--concurrency 8] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from benchlib import POSTGRES, drop_schema, postgres_schema

from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.store import GrantStore
from grantkeeper.store.records import UserProfile
from grantkeeper.store.signin_replay_cache import ReplayEntry

CLIENT = "bench.apps.googleusercontent.com"


async def timed(
    name: str, call: Callable[[int], Awaitable[None]], calls: int, concurrency: int
) -> float:
    """CPU milliseconds per call of ``calls`` calls, ``concurrency`` at a time."""
    todo = iter(range(calls))

    async def worker() -> None:
        for i in todo:
            await call(i)

    began = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - began) * 1000 / calls


async def measure(store: GrantStore, calls: int, concurrency: int) -> dict[str, float]:
    expires = store._clock.now() + timedelta(hours=1)

    async def sign_in(i: int) -> None:
        code = secrets.token_hex(16)
        await store.claim_signin(code, timedelta(minutes=10))
        await store.record_sign_in(
            UserProfile(sub=f"1{i:020d}", email=f"u{i}@example.com", name="Bench"),
            CLIENT,
            {"openid", "email"},
            "1//refresh-" + secrets.token_hex(20),
            "ya29.access-" + secrets.token_hex(40),
            expires,
            replay=ReplayEntry(code, timedelta(minutes=10), lambda record: "{}"),
        )

    async def read(i: int) -> None:
        grant = await store.get_grant(f"1{i % 500:020d}", CLIENT)
        assert grant is not None
        await store.record_hand_out(
            grant.sub, CLIENT, audit_detail={"caller": "bench", "scopes": [], "forced": False}
        )

    async def refresh(i: int) -> None:
        sub = f"1{i:020d}"
        leased = await store.try_acquire_lease(
            sub, CLIENT, "bench", timedelta(seconds=30), unless_cooling_down=True
        )
        assert leased is not None
        saved = await store.save_refreshed(
            sub,
            CLIENT,
            leased.version,
            "ya29.access-" + secrets.token_hex(40),
            expires,
            None,
            "bench",
            last_used_at=store._clock.now(),
            audit_detail={"caller": "bench"},
            hand_out_detail={"caller": "bench"},
            clear_cooldown=True,
        )
        assert saved

    return {
        "sign-in": await timed("sign-in", sign_in, calls, concurrency),
        "read": await timed("read", read, calls, concurrency),
        "refresh": await timed("refresh", refresh, calls, concurrency),
    }


async def run(url: str, schema: str | None, calls: int, concurrency: int) -> dict[str, float]:
    store = await GrantStore.open(
        url, KeyRing.from_strings([generate_key()]), schema=schema, migrate=True
    )
    try:
        return await measure(store, calls, concurrency)
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    if args.calls < 500:
        parser.error("--calls must be at least 500 (the reads cycle over 500 grants)")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="gk-store-calls-") as tmp:
        if "sqlite" in args.stores:
            url = f"sqlite:///{Path(tmp) / 'calls.sqlite3'}"
            results["SQLite"] = asyncio.run(run(url, None, args.calls, args.concurrency))
        if "postgresql" in args.stores:
            schema = postgres_schema("gk_calls")
            if schema is None:
                print("[postgresql] skipped: not reachable at 127.0.0.1:5432")
            else:
                try:
                    results["PostgreSQL"] = asyncio.run(
                        run(POSTGRES, schema, args.calls, args.concurrency)
                    )
                finally:
                    drop_schema(schema)
    print(
        f"The store alone: CPU ms per call, {args.calls} calls of each, "
        f"{args.concurrency} at once (this process only)"
    )
    print(f"{'':<12}{'sign-in':>9}{'read':>8}{'refresh':>9}")
    for name, figures in results.items():
        print(f"{name:<12}{figures['sign-in']:9.2f}{figures['read']:8.2f}{figures['refresh']:9.2f}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
