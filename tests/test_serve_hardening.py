"""``grantkeeper serve`` as an attacker meets it: a subprocess on a real socket."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from .test_cli_access import app_env, emulator, free_port  # noqa: F401

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

XRW = {"X-Requested-With": "com.example.photos"}
SERVICE = {"Authorization": "Bearer service-key-for-cli-tests"}


@contextmanager
def serving(env: dict[str, str], output: list[str] | None = None) -> Iterator[str]:
    """``serve`` on a free port; ``output`` receives what it printed, once it has stopped."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the keeper did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        printed = process.communicate(timeout=30)[0]
        if output is not None:
            output.append(printed)


@pytest.fixture
def strict_env(app_env: dict[str, str]) -> dict[str, str]:  # noqa: F811
    env = {k: v for k, v in app_env.items() if k != "GRANTKEEPER_ALLOW_INSECURE_HTTP"}
    assert (
        subprocess.run(
            [sys.executable, "-m", "grantkeeper", "db", "upgrade"], env=env, check=False
        ).returncode
        == 0
    )
    return env


def test_only_trusted_proxies_decide_the_scheme(strict_env: dict[str, str]) -> None:
    """D1: a loopback client is not a proxy when GRANTKEEPER_TRUSTED_PROXIES names another
    address; uvicorn's own proxy-header handling (FORWARDED_ALLOW_IPS) must not vouch for it."""
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
    env = {**strict_env, "GRANTKEEPER_TRUSTED_PROXIES": "10.9.9.9"}
    with serving(env) as base:
        sign_in = httpx.post(
            base + "/v1/google/signin", json={"code": "4/0junk"}, headers={**XRW, **forged}
        )
        token = httpx.get(base + "/v1/users/123/token", headers={**SERVICE, **forged})
        risc = httpx.post(base + "/v1/google/risc", content=b"a.b.c", headers=forged)
    for response in (sign_in, token, risc):
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "https_required"

    # The same request from a proxy the setting trusts passes the HTTPS rule.
    with serving({**strict_env, "GRANTKEEPER_TRUSTED_PROXIES": "127.0.0.1"}) as base:
        trusted = httpx.post(
            base + "/v1/google/signin", json={"code": "4/0junk"}, headers={**XRW, **forged}
        )
    assert trusted.status_code == 400, trusted.text
    assert trusted.json()["code"] == "invalid_code"


def test_the_access_log_redacts_codes_and_can_be_turned_off(strict_env: dict[str, str]) -> None:
    """A line per request by default, its ``code=`` redacted; GRANTKEEPER_ACCESS_LOG=false
    leaves the requests out and keeps the rest of the log."""
    logs: dict[str, list[str]] = {"true": [], "false": []}
    for setting, output in logs.items():
        with serving({**strict_env, "GRANTKEEPER_ACCESS_LOG": setting}, output) as base:
            assert httpx.get(base + "/healthz?code=4/0secret-code").status_code == 200
    with_lines, without = "".join(logs["true"]), "".join(logs["false"])
    assert '"GET /healthz?code=[redacted] HTTP/1.1" 200' in with_lines
    assert "/healthz" not in without
    assert "Uvicorn running" in without  # the rest of the log is still there
    assert "secret-code" not in with_lines + without
