"""A nightly bulk refresh: GRANTS grants whose access tokens expired long ago, kept alive
through the keeper (``grantkeeper sweep --keep-alive``'s code path) while the emulator answers
every call in 50 ms (``latency_ms``), against a loop of google-auth ``Credentials.refresh``.

The limit is GRANTS x 50 ms / CONCURRENCY; the goals (issue 9): within 1.5x of it, and at least
20x faster than the loop. The loop is timed on LOOP grants and scaled to GRANTS (it is linear:
one refresh after the other). Peak RSS is this process's (keeper, store and sweep; the emulator
runs in its own process).

The store is a SQLite file (the embedded default) or, with ``--database postgresql``, a fresh
schema on the PostgreSQL server of benchlib.POSTGRES.

  python bench/bench_bulk_refresh.py [--grants 10000] [--concurrency 32] [--loop 100]
                                     [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google.auth.transport.requests
from benchlib import POSTGRES, Emulator, drop_schema, postgres_schema, tree_cpu
from google.oauth2.credentials import Credentials

from grantkeeper.clock import OffsetClock
from grantkeeper.crypto import generate_key
from grantkeeper.emulator.client import EmulatorControl
from grantkeeper.keeper import Keeper, SweepOptions
from grantkeeper.settings import Settings

SCOPES = ["openid", "email", "profile"]
LATENCY_MS = 50
IDLE = timedelta(days=91)


async def sign_in_all(keeper: Keeper, codes: list[str], concurrency: int) -> None:
    queue = iter(codes)

    async def worker() -> None:
        for code in queue:
            await keeper.sign_in(code)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def google_auth_loop(emulator: Emulator, web: dict[str, str], tokens: list[str]) -> float:
    """Seconds per refresh of a plain loop of google-auth Credentials.refresh."""
    request = google.auth.transport.requests.Request()
    began = time.perf_counter()
    for refresh_token in tokens:
        credentials = Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=refresh_token,
            token_uri=web["token_uri"],
            client_id=web["client_id"],
            client_secret=web["client_secret"],
        )
        credentials.refresh(request)  # type: ignore[no-untyped-call]
    return (time.perf_counter() - began) / len(tokens)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loop", type=int, default=100)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    schema = postgres_schema("gk_bulk") if args.database == "postgresql" else None
    if args.database == "postgresql" and schema is None:
        print(f"PostgreSQL is not reachable at {POSTGRES}", file=sys.stderr)
        return 1
    try:
        return run_bench(args, schema)
    finally:
        if schema is not None:
            drop_schema(schema)


def run_bench(args: argparse.Namespace, schema: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="gk-bulk-") as tmp:
        workdir = Path(tmp)
        emulator = Emulator.start(workdir)
        try:
            control = EmulatorControl(emulator.base_url)
            web = control.create_client("web")
            ios = control.create_client("ios")["client_id"]
            (workdir / "client_secret.json").write_text(json.dumps(web))
            emails = [
                control.create_user(f"bulk{i}@example.com")["email"] for i in range(args.grants)
            ]
            codes = [
                control.server_auth_code(ios, web["web"]["client_id"], e, SCOPES) for e in emails
            ]
            settings = Settings(
                client_secrets_file=workdir / "client_secret.json",
                issuer=emulator.base_url,
                allowed_client_ids=[ios],
                database_url=(
                    POSTGRES if schema is not None else f"sqlite:///{workdir / 'bulk.sqlite3'}"
                ),
                database_schema=schema,
                encryption_keys=[generate_key()],
                data_dir=workdir,
            )
            clock = OffsetClock()

            async def run() -> tuple[float, float, float, int]:
                async with Keeper(settings, clock=clock) as keeper:
                    await sign_in_all(keeper, codes, 16)
                    # Three months pass at Google and at the keeper: every grant is idle and
                    # its access token long expired.
                    control.advance_clock(IDLE.total_seconds())
                    clock.advance(IDLE.total_seconds())
                    control.update_settings(latency_ms=LATENCY_MS)
                    before = control.stats()["token"]["refresh_token"]
                    began = time.perf_counter()
                    cpu_began = time.process_time()
                    emulator_began = sum(tree_cpu(emulator.process.pid).values())
                    # What `grantkeeper sweep --keep-alive` (and the worker's sweep) calls.
                    report = await keeper.sweep(
                        SweepOptions(keep_alive=True, concurrency=args.concurrency)
                    )
                    seconds = time.perf_counter() - began
                    cpu = time.process_time() - cpu_began
                    emulator_cpu = sum(tree_cpu(emulator.process.pid).values()) - emulator_began
                    refreshes = control.stats()["token"]["refresh_token"] - before
                    assert report.actions.get("kept_alive", 0) == args.grants, report.actions
                    return seconds, cpu, emulator_cpu, refreshes

            seconds, cpu, emulator_cpu, refreshes = asyncio.run(run())
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            # The loop: fresh grants of its own (their refresh tokens straight from the token
            # endpoint), refreshed one after the other with the same 50 ms latency.
            control.update_settings(latency_ms=0)
            loop_tokens = []
            for i in range(args.loop):
                email = control.create_user(f"loop{i}@example.com")["email"]
                code = control.server_auth_code(ios, web["web"]["client_id"], email, SCOPES)
                answer = control.http.post(
                    "/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "client_id": web["web"]["client_id"],
                        "client_secret": web["web"]["client_secret"],
                        "redirect_uri": "",
                    },
                ).json()
                loop_tokens.append(answer["refresh_token"])
            control.update_settings(latency_ms=LATENCY_MS)
            per_refresh = google_auth_loop(emulator, web["web"], loop_tokens)
            control.close()
        finally:
            emulator.stop()

    limit = args.grants * LATENCY_MS / 1000 / args.concurrency
    loop_total = per_refresh * args.grants
    print(
        f"Bulk refresh of {args.grants:,} expired grants on {args.database}, emulator latency "
        f"{LATENCY_MS} ms, concurrency {args.concurrency} ({datetime.now(UTC):%Y-%m-%d})"
    )
    print(f"  keeper (sweep --keep-alive)   {seconds:8.1f} s   {refreshes:,} refreshes at Google")
    print(f"  keeper CPU per refresh        {cpu / args.grants * 1000:8.2f} ms  (this process)")
    print(
        f"  emulator CPU per refresh      {emulator_cpu / args.grants * 1000:8.2f} ms  "
        "(its own process: Google's share)"
    )
    print(f"  limit N x 50 ms / {args.concurrency:<3}        {limit:8.1f} s")
    print(
        f"  google-auth refresh loop     {loop_total:8.1f} s   (timed on {args.loop}, "
        f"{per_refresh * 1000:.1f} ms each)"
    )
    print(f"  peak RSS                      {peak:8.0f} MiB")
    within = seconds / limit
    faster = loop_total / seconds
    print("Goals (issue 9):")
    met = {True: "met", False: "NOT met"}
    print(f"  time / limit                 {within:6.2f}x  goal <= 1.5  {met[within <= 1.5]}")
    print(f"  google-auth loop / keeper    {faster:6.1f}x  goal >= 20   {met[faster >= 20]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
