"""Chaos: SIGKILL `grantkeeper serve` while it delivers webhooks; no notification may be lost.

A slow webhook receiver (it answers in 50-300 ms, and 10% of the time 500) records every
delivery and checks its Standard Webhooks signature. `grantkeeper serve --workers 2` (two
deliverers side by side) runs on a SQLite store (or ``--postgres``) against the Google
emulator, and a driver thread keeps signing users in
and disconnecting them over its HTTP API: each disconnect commits a ``grant.revoked``
notification to the outbox. Meanwhile the serve process is SIGKILLed at random moments (most
land while a POST to the receiver is in flight; the whole process group, so every worker dies)
and started again, ``--kills`` times. At the
end one last serve drains the outbox, and the check is:

- every message the outbox holds was received at least once (de-duplicated by webhook-id);
- every disconnected grant had its ``grant.revoked`` received.

Prints what it tried and ``lost: N``; exits 1 if N > 0. Run from the repository root::

    .venv/bin/python chaos/webhook_outbox_sigkill.py [--kills 22] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from standardwebhooks import Webhook, WebhookVerificationError

from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.emulator import run_emulator
from grantkeeper.store import GrantStore
from grantkeeper.webhooks import generate_secret

SERVICE_KEY = "chaos-service-key-0123456789abcdef"
XRW = {"X-Requested-With": "com.example.chaos"}


@dataclass
class Receiver:
    secret: str
    ids: dict[str, int] = field(default_factory=dict)
    revoked_subs: set[str] = field(default_factory=set)
    in_flight: int = 0
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_receiver(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    verifier = Webhook(receiver.secret)
    rng = random.Random(7)  # noqa: S311  # chaos, not secrets

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.in_flight += 1
                slow, fail = rng.uniform(0.05, 0.3), rng.random() < 0.1
            try:
                time.sleep(slow)  # a slow app: kills land while POSTs are in flight
                try:
                    payload = verifier.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(400)
                    return
                if fail:
                    self._answer(500)
                    return
                with receiver.lock:
                    webhook_id = self.headers["webhook-id"]
                    receiver.ids[webhook_id] = receiver.ids.get(webhook_id, 0) + 1
                    if payload["type"] == "grant.revoked":
                        receiver.revoked_subs.add(payload["data"]["sub"])
                self._answer(204)
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hooks"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serve:
    """`grantkeeper serve` as a process we can SIGKILL and start again on the same port."""

    def __init__(self, env: dict[str, str], workdir: Path, workers: int) -> None:
        self.env = env
        self.args = ["--workers", str(workers)]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "serve.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and arguments
            [sys.executable, "-m", "grantkeeper", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes every worker
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}; see serve.log")
            try:
                if httpx.get(self.base + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit("serve did not start within 60 s")

    def kill(self) -> None:
        """SIGKILL the supervisor and its workers at once, as a crashed host would lose them."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Driver:
    """Signs users in and disconnects them through serve's API, whatever its state."""

    serve: Serve
    control: Any
    ios: str
    web: str
    disconnected: int = 0
    attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            email = f"chaos{n}@example.com"
            try:
                self.control.create_user(email, name=f"Chaos {n}")
                code = self.control.server_auth_code(
                    self.ios, self.web, email, ["openid", "email"], prompt="consent"
                )
                self.attempts += 1
                signed = httpx.post(
                    self.serve.base + "/v1/google/signin",
                    json={"code": code},
                    headers=XRW,
                    timeout=5,
                )
                if signed.status_code != 200:
                    continue
                sub = signed.json()["user"]["sub"]
                gone = httpx.delete(
                    f"{self.serve.base}/v1/users/{sub}/grant",
                    headers={"Authorization": f"Bearer {SERVICE_KEY}"},
                    timeout=5,
                )
                if gone.status_code == 200:
                    self.disconnected += 1
            except httpx.HTTPError:
                time.sleep(0.05)  # serve is down (killed): the next user waits for it


async def outbox_and_disconnected(
    url: str, schema: str | None, key: str
) -> tuple[list[Any], set[str], int]:
    store = await GrantStore.open(url, KeyRing.from_strings([key]), schema=schema)
    try:
        entries = await store.list_webhooks(limit=1_000_000)
        gone = {g.sub for g in await store.list_grants() if g.status == "disconnected"}
        return entries, gone, await store.count_pending_webhooks()
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=22)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2, help="serve's worker processes")
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run on PostgreSQL (a schema of its own, dropped at the end); default SQLite",
    )
    options = parser.parse_args()
    rng = random.Random(options.seed)  # noqa: S311  # chaos, not secrets
    started = time.monotonic()
    secret = generate_secret()
    receiver = Receiver(secret)
    server, hook_url = start_receiver(receiver)
    workdir = Path(tempfile.mkdtemp(prefix="gk-chaos-outbox-"))
    key = generate_key("chaos")
    database_url = options.postgres or f"sqlite:///{workdir / 'grants.sqlite3'}"
    schema = f"gk_chaos_{secrets.token_hex(4)}" if options.postgres else None
    if schema is not None:
        with psycopg.connect(options.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        return run(
            Setup(
                options,
                rng,
                started,
                receiver,
                hook_url,
                server,
                workdir,
                key,
                database_url,
                schema,
            )
        )
    finally:
        if schema is not None:
            with psycopg.connect(options.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass(frozen=True)
class Setup:
    options: argparse.Namespace
    rng: random.Random
    started: float
    receiver: Receiver
    hook_url: str
    server: ThreadingHTTPServer
    workdir: Path
    key: str
    database_url: str
    schema: str | None


def run(setup: Setup) -> int:
    options, rng, started, receiver = setup.options, setup.rng, setup.started, setup.receiver
    hook_url, server, workdir, key = setup.hook_url, setup.server, setup.workdir, setup.key
    database_url, schema, secret = setup.database_url, setup.schema, receiver.secret
    kills_mid_delivery = 0
    with run_emulator() as emulator:
        control = emulator.control
        web = control.create_client("web")
        ios = control.create_client("ios")["client_id"]
        secrets_file = workdir / "client_secret.json"
        secrets_file.write_text(json.dumps(web))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
        env.update(
            GRANTKEEPER_CLIENT_SECRETS_FILE=str(secrets_file),
            GRANTKEEPER_ISSUER=emulator.base_url,
            GRANTKEEPER_ALLOWED_CLIENT_IDS=ios,
            GRANTKEEPER_DATA_DIR=str(workdir / "data"),
            GRANTKEEPER_DATABASE_URL=database_url,
            **({"GRANTKEEPER_DATABASE_SCHEMA": schema} if schema else {}),
            GRANTKEEPER_ENCRYPTION_KEYS=key,
            GRANTKEEPER_SERVICE_API_KEYS=SERVICE_KEY,
            GRANTKEEPER_ALLOW_INSECURE_HTTP="true",
            GRANTKEEPER_SIGNIN_RATE_PER_MINUTE="0",
            GRANTKEEPER_WEBHOOK_URL=hook_url,
            GRANTKEEPER_WEBHOOK_SECRET=secret,
            # Short waits so the run fits in a few minutes: a killed claim lapses in 6.5 s, a
            # failed attempt is retried after a second or two (1 s is the shortest setting).
            GRANTKEEPER_WEBHOOK_TIMEOUT_SECONDS="0.5",
            GRANTKEEPER_WEBHOOK_RETRY_SECONDS="1",
            GRANTKEEPER_WEBHOOK_RETRY_MAX_SECONDS="2",
            GRANTKEEPER_WEBHOOK_MAX_ATTEMPTS="50",
        )
        serve = Serve(env, workdir, options.workers)
        serve.start()
        driver = Driver(serve, control, ios, web["web"]["client_id"])
        producing = threading.Thread(target=driver.run, daemon=True)
        producing.start()
        try:
            for _ in range(options.kills):
                time.sleep(rng.uniform(0.3, 1.2))
                with receiver.lock:
                    kills_mid_delivery += receiver.in_flight > 0
                serve.kill()
                time.sleep(rng.uniform(0.0, 0.2))
                serve.start()
            driver.stop.set()
            producing.join(30)
            # The last serve delivers what is left, claims of killed processes included.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                entries, gone, pending = asyncio.run(
                    outbox_and_disconnected(database_url, schema, key)
                )
                if pending == 0:
                    break
                time.sleep(0.5)
        finally:
            serve.stop()
            server.shutdown()
    entries, gone, pending = asyncio.run(outbox_and_disconnected(database_url, schema, key))
    received = set(receiver.ids)
    never_received = [e.id for e in entries if e.id not in received]
    unnotified = sorted(gone - receiver.revoked_subs)
    lost = len(never_received) + len(unnotified)
    duplicates = sum(count - 1 for count in receiver.ids.values())
    states: dict[str, int] = {}
    for entry in entries:
        states[entry.state] = states.get(entry.state, 0) + 1
    print(f"store: {'postgresql, schema ' + schema if schema else 'sqlite'}")
    print(
        f"serve ({options.workers} workers, each delivering) SIGKILLed: {options.kills} times, "
        f"with a POST in flight: {kills_mid_delivery}"
    )
    print(
        f"sign-ins tried: {driver.attempts} (most fail while serve is down); "
        f"grants disconnected: {len(gone)}"
    )
    retried = sum(1 for e in entries if e.attempts > 1)
    print(
        f"outbox messages: {len(entries)} {json.dumps(states, sort_keys=True)}; "
        f"attempted more than once: {retried}"
    )
    print(
        f"received: {len(received)} distinct webhook-ids, {duplicates} duplicate deliveries "
        f"(at least once: de-duplicate by webhook-id); bad signatures: {receiver.bad_signatures}"
    )
    print(
        f"never received: {len(never_received)}; disconnected without grant.revoked: "
        f"{len(unnotified)}"
    )
    print(f"time: {time.monotonic() - started:.1f} s (serve's log: {workdir / 'serve.log'})")
    print(f"lost: {lost}")
    return 1 if lost or receiver.bad_signatures else 0


if __name__ == "__main__":
    sys.exit(main())
