"""What the chaos scenarios share: an emulator with an app registered at it, the environment of a
keeper configured for it, ``grantkeeper serve`` as a process, and a throwaway PostgreSQL cluster
of the scenario's own (never the shared server at :5432).

Each scenario is run as ``.venv/bin/python chaos/<name>.py`` from the repository root; it
prints what it tried and ``lost: N`` and exits 1 if anything was lost.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle

ROOT = Path(__file__).resolve().parents[1]
SCOPES = ("openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata")
XRW = {"X-Requested-With": "com.example.chaos"}


def say(line: str) -> None:
    print(line, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the app at the emulator -------------------------------------------------------------------


@dataclass
class App:
    """An app registered at the emulator, its users, and a keeper's environment for it."""

    emulator: EmulatorHandle
    ios_client: str
    web_client: str
    service_key: str
    emails: list[str]
    env: dict[str, str]

    def code(self, email: str) -> str:
        return self.emulator.control.server_auth_code(
            self.ios_client, self.web_client, email, SCOPES
        )

    def token_is_live(self, token: str) -> bool:
        return self.emulator.state.lookup_access_token(token) is not None


def register_app(emulator: EmulatorHandle, directory: Path, users: int, **settings: str) -> App:
    """Clients and ``users`` test users at the emulator; ``settings`` are more GRANTKEEPER_*
    variables (without the prefix, upper case)."""
    control = emulator.control
    web = control.create_client("web")
    ios = control.create_client("ios")["client_id"]
    emails = [f"chaos{n}@example.com" for n in range(users)]
    for email in emails:
        control.create_user(email, name=f"Chaos {email}")
    directory.mkdir(parents=True, exist_ok=True)
    secrets_file = directory / "client_secret.json"
    secrets_file.write_text(json.dumps(web))
    service_key = "svc-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env.update(
        GRANTKEEPER_CLIENT_SECRETS_FILE=str(secrets_file),
        GRANTKEEPER_ISSUER=emulator.base_url,
        GRANTKEEPER_ALLOWED_CLIENT_IDS=f"{ios},{web['web']['client_id']}",
        GRANTKEEPER_DATA_DIR=str(directory / "data"),
        GRANTKEEPER_ENCRYPTION_KEYS=generate_key("chaos"),
        GRANTKEEPER_SERVICE_API_KEYS=service_key,
        GRANTKEEPER_ALLOW_INSECURE_HTTP="true",
    )
    env.update({f"GRANTKEEPER_{name.upper()}": value for name, value in settings.items()})
    return App(emulator, ios, web["web"]["client_id"], service_key, emails, env)


# -- grantkeeper serve ---------------------------------------------------------------------------


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[tuple[str, int]]:
    """``grantkeeper serve`` on a free port until the block ends: (base URL, its pid)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "grantkeeper", "serve", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and tools
            [*command, "--workers", str(workers)],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"grantkeeper serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base, process.pid
        if process.poll() is not None:
            raise SystemExit(f"grantkeeper serve ended on its own:\n{log.read_text()[-3000:]}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a PostgreSQL cluster of our own -------------------------------------------------------------


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


@dataclass
class Cluster:
    """A throwaway cluster: its own data directory, port and socket directory."""

    directory: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _as_owner(self, *command: str) -> list[str]:
        # initdb and pg_ctl refuse root: the postgres user runs them.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        options = (
            f"-p {self.port} -k {self.directory / 'socket'} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200"
        )
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l"]
        command += [str(self.directory / "server.log"), "-o", options, "-w", "-t", "60", *args]
        return subprocess.run(  # noqa: S603  # our own interpreter and tools
            self._as_owner(*command), capture_output=True, text=True, check=check, timeout=120
        )

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self, mode: str) -> None:
        self.pg_ctl("stop", "-m", mode)

    def restart(self, mode: str) -> None:
        self.pg_ctl("restart", "-m", mode)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Cluster]:
    """initdb into a temporary directory, start on a free port; stopped and removed at the end,
    whatever happened."""
    bindir = _postgres_bin()
    directory = Path(tempfile.mkdtemp(prefix="grantkeeper-chaos-pg-"))
    (directory / "socket").mkdir()
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        shutil.chown(directory / "socket", "postgres", "postgres")
    cluster = Cluster(directory, free_port(), bindir)
    try:
        subprocess.run(  # noqa: S603  # our own interpreter and tools
            cluster._as_owner(
                str(bindir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        cluster.start()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            cluster.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(directory, ignore_errors=True)


def report(figures: dict[str, object], lost: int) -> int:
    """Print the figures and ``lost: N``; the exit code (1 if anything was lost)."""
    for name, value in figures.items():
        say(f"{name}: {value}")
    say(f"lost: {lost}")
    return 1 if lost else 0
