"""``grantkeeper serve | users | token`` as subprocesses, against a running emulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle, run_emulator

from .cli_in_process import invoke

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

SCOPES = ["openid", "email", "profile"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def app_env(emulator: EmulatorHandle, tmp_path: Path) -> dict[str, str]:
    """The environment of a backend configured for the emulator, SQLite in tmp_path."""
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
        GRANTKEEPER_ENCRYPTION_KEYS=generate_key("cli"),
        GRANTKEEPER_SERVICE_API_KEYS="service-key-for-cli-tests",
        GRANTKEEPER_ALLOW_INSECURE_HTTP="true",
        GRANTKEEPER_TEST_WEB_CLIENT=web["web"]["client_id"],
        GRANTKEEPER_TEST_IOS_CLIENT=ios,
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(app_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", "serve", "--port", str(port), "--workers", "1"],
        env=app_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the keeper did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_serve_signs_in_over_http_then_users_and_token_read_the_store(
    served: str, app_env: dict[str, str], emulator: EmulatorHandle
) -> None:
    code = emulator.control.server_auth_code(
        app_env["GRANTKEEPER_TEST_IOS_CLIENT"],
        app_env["GRANTKEEPER_TEST_WEB_CLIENT"],
        "grace@example.com",
        SCOPES,
    )
    response = httpx.post(
        served + "/v1/google/signin",
        json={"code": code},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert response.status_code == 200, response.text
    sub = response.json()["user"]["sub"]

    listed = invoke(app_env, "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [u["email"] for u in json.loads(listed.stdout)] == ["grace@example.com"]

    shown = invoke(app_env, "users", "show", sub)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["grants"][0]["status"] == "active"
    assert state["grants"][0]["offline"] is True
    assert "ya29." not in shown.stdout
    assert "1//" not in shown.stdout

    token = cli(app_env, "token", sub)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("ya29.")
    assert emulator.state.lookup_access_token(token.stdout.strip()) is not None

    over_http = httpx.get(
        f"{served}/v1/users/{sub}/token",
        headers={"Authorization": "Bearer service-key-for-cli-tests"},
    )
    assert over_http.json()["access_token"] == token.stdout.strip()


def test_cli_errors_name_the_code_and_what_to_do(app_env: dict[str, str]) -> None:
    # Reading commands never migrate: a database that was never set up says what to run.
    result = cli(app_env, "users", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("store_unavailable:")
    assert "grantkeeper db upgrade" in result.stderr
    assert invoke(app_env, "db", "upgrade").returncode == 0
    result = invoke(app_env, "users", "show", "404404404404404404404")
    assert result.returncode == 1
    assert result.stderr.startswith("unknown_user:")
    result = invoke(app_env, "token", "404404404404404404404", "--scope", "email")
    assert result.returncode == 1
    assert "unknown_user" in result.stderr


def test_serve_refuses_to_start_without_client_secrets(app_env: dict[str, str]) -> None:
    env = {**app_env}
    del env["GRANTKEEPER_CLIENT_SECRETS_FILE"]
    result = cli(env, "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert "config_invalid" in result.stderr
    assert "GRANTKEEPER_CLIENT_SECRETS_FILE" in result.stderr


def test_a_malformed_client_secrets_file_names_the_file_and_field(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "client_secret_broken.json"
    broken.write_text(json.dumps({"web": {"client_id": "x.apps.googleusercontent.com"}}))
    result = cli({**app_env, "GRANTKEEPER_CLIENT_SECRETS_FILE": str(broken)}, "serve")
    assert result.returncode == 1
    assert "client_secret_broken.json" in result.stderr
    assert "client_secret" in result.stderr
