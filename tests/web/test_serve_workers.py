"""``grantkeeper serve --workers 2`` as a subprocess on one store (SQLite and PostgreSQL): both
workers answer sign-ins and token reads, and 2 workers x 50 concurrent callers of one expired
grant cost exactly one refresh at the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle, run_emulator

SCOPES = ["openid", "email", "profile"]
SERVICE_KEY = "service-key-for-worker-tests"
CALLERS = 100

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(
    emulator: EmulatorHandle, store_target: Any, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str], str, str]]:
    control = emulator.control
    control.reset()
    web = control.create_client("web")
    ios = control.create_client("ios")["client_id"]
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(web))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env.update(
        GRANTKEEPER_CLIENT_SECRETS_FILE=str(secrets_file),
        GRANTKEEPER_ISSUER=emulator.base_url,
        GRANTKEEPER_ALLOWED_CLIENT_IDS=ios,
        GRANTKEEPER_DATA_DIR=str(tmp_path / "data"),
        GRANTKEEPER_DATABASE_URL=store_target.url,
        GRANTKEEPER_ENCRYPTION_KEYS=generate_key("workers"),
        GRANTKEEPER_SERVICE_API_KEYS=SERVICE_KEY,
        GRANTKEEPER_ALLOW_INSECURE_HTTP="true",
    )
    if store_target.schema:
        env["GRANTKEEPER_DATABASE_SCHEMA"] = store_target.schema
    port = free_port()
    # A file, not a pipe: nobody reads a pipe while the test runs, and a full one would stall
    # the workers' logging.
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while len(psutil.Process(process.pid).children()) < 2 or not _ready(base):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the keeper did not become ready"
            time.sleep(0.1)
        yield base, process, web["web"]["client_id"], ios
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
        output = log_path.read_text()
        assert "1//" not in output
        assert "ya29." not in output


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def sign_in(base: str, emulator: EmulatorHandle, web: str, ios: str, email: str) -> str:
    code = emulator.control.server_auth_code(ios, web, email, SCOPES)
    response = httpx.post(
        base + "/v1/google/signin",
        json={"code": code, "platform": "ios"},
        headers={"X-Requested-With": "com.example.tests"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    sub: str = response.json()["user"]["sub"]
    return sub


def workers_holding_connections(process: subprocess.Popen[str], port: int) -> set[int]:
    holders = set()
    for worker in psutil.Process(process.pid).children():
        for conn in worker.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                holders.add(worker.pid)
    return holders


def test_two_workers_sign_in_read_and_refresh_an_expired_grant_once(
    served: tuple[str, subprocess.Popen[str], str, str], emulator: EmulatorHandle
) -> None:
    base, process, web, ios = served
    control = emulator.control
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}

    subs = [sign_in(base, emulator, web, ios, f"user{i}@example.com") for i in range(6)]
    for sub in subs:
        answer = httpx.get(f"{base}/v1/users/{sub}/token", headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["access_token"].startswith("ya29.")
    assert control.stats()["token"]["refresh_token"] == 0

    # A grant whose stored access token lives 60 s is stale for the keeper (its refresh margin
    # is 300 s); the refresh then brings an hour-long token that every caller can share.
    control.update_settings(access_token_ttl=60)
    herd = sign_in(base, emulator, web, ios, "herd@example.com")
    control.update_settings(access_token_ttl=3599)

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            # Open every connection first, so both workers hold callers when the burst starts.
            await asyncio.gather(*(client.get("/healthz") for _ in range(CALLERS)))
            port = int(base.rsplit(":", 1)[1])
            assert len(workers_holding_connections(process, port)) == 2
            return await asyncio.gather(
                *(client.get(f"/v1/users/{herd}/token", headers=auth) for _ in range(CALLERS))
            )

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * CALLERS
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert control.stats()["token"]["refresh_token"] == 1
