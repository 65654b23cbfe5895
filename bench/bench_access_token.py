"""How fast the keeper hands out tokens, against the emulator on loopback.

Prints, for SQLite (and PostgreSQL when reachable):
  - sign-in: code exchange + ID-token verification + encrypted write, per second;
  - access_token when the stored token is fresh (one decrypting read), per second;
  - access_token that must refresh (lease, provider call, CAS write), per second;
  - 100 concurrent callers on an expired grant: wall time and refreshes at the provider;
  - peak RSS of the process.
Ratios are from this one run; the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import run_emulator
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SCOPES = ["openid", "email", "profile"]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}/s  ({seconds * 1000 / count:6.2f} ms each)"


async def run(label: str, database_url: str, schema: str | None, workdir: Path) -> None:
    with run_emulator() as emulator:
        control = emulator.control
        web = control.create_client("web")
        ios = control.create_client("ios")["client_id"]
        secrets_file = workdir / f"client_secret_{label}.json"
        secrets_file.write_text(json.dumps(web))
        settings = Settings(
            client_secrets_file=secrets_file,
            issuer=emulator.base_url,
            allowed_client_ids=[ios],
            database_url=database_url,
            database_schema=schema,
            encryption_keys=[generate_key()],
            data_dir=workdir,
        )
        clock = emulator.state.clock
        async with Keeper(settings, clock=clock) as keeper:
            users = [control.create_user(f"user{i}@example.com")["email"] for i in range(60)]
            codes = [
                control.server_auth_code(ios, web["web"]["client_id"], email, SCOPES)
                for email in users
            ]
            started = time.perf_counter()
            subs = [(await keeper.sign_in(code)).sub for code in codes]
            signin = time.perf_counter() - started

            rounds = 1000
            started = time.perf_counter()
            for i in range(rounds):
                await keeper.access_token(subs[i % len(subs)])
            fresh = time.perf_counter() - started

            control.advance_clock(2 * 3600)
            started = time.perf_counter()
            for sub in subs:
                await keeper.access_token(sub)
            refreshing = time.perf_counter() - started

            control.advance_clock(2 * 3600)
            before = control.stats()["token"]["refresh_token"]
            started = time.perf_counter()
            await asyncio.gather(*(keeper.access_token(subs[0]) for _ in range(100)))
            herd = time.perf_counter() - started
            herd_refreshes = control.stats()["token"]["refresh_token"] - before

    print(f"[{label}]")
    print(f"  sign-in (exchange+verify+store)  {rate(len(codes), signin)}")
    print(f"  access_token, fresh stored token {rate(rounds, fresh)}")
    print(f"  access_token, refresh needed     {rate(len(subs), refreshing)}")
    print(f"  100 concurrent callers, expired  {herd * 1000:8.1f} ms, {herd_refreshes} refresh(es)")
    print(f"  fresh/refresh speed ratio        {(rounds / fresh) / (len(subs) / refreshing):8.1f}x")


def postgres_schema() -> str | None:
    try:
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as conn:
            schema = f"gk_bench_{os.getpid()}"
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
            return schema
    except psycopg.OperationalError:
        return None


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        asyncio.run(run("sqlite", f"sqlite:///{workdir / 'bench.sqlite3'}", None, workdir))
        schema = postgres_schema()
        if schema is None:
            print("[postgresql] skipped: not reachable at 127.0.0.1:5432")
        else:
            try:
                asyncio.run(run("postgresql", POSTGRES, schema, workdir))
            finally:
                drop_schema(schema)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {peak_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
