"""``grantkeeper emulator`` as a user runs it: a subprocess that prints its URL and serves."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

GRANTKEEPER = str(Path(sys.executable).with_name("grantkeeper"))


def test_help_documents_the_control_api() -> None:
    result = subprocess.run(
        [GRANTKEEPER, "emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    for path in (
        "/emulator/clients",
        "/emulator/server-auth-code",
        "/emulator/faults",
        "/emulator/clock",
        "/emulator/settings",
        "/emulator/stats",
        "--port",
        "--host",
    ):
        assert path in result.stdout


def test_serves_and_prints_its_base_url_without_logging_tokens() -> None:
    process = subprocess.Popen(
        [GRANTKEEPER, "emulator", "--port", "0", "--issuer", "https://accounts.google.com"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, timeout=10) as http:
            discovery = http.get("/.well-known/openid-configuration").json()
            assert discovery["issuer"] == "https://accounts.google.com"
            assert discovery["token_endpoint"] == f"{base_url}/token"
            secret = "ya29.do-not-log-me"
            assert http.get("/tokeninfo", params={"access_token": secret}).status_code == 400
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "GET /tokeninfo?access_token=[redacted]" in output
    assert "do-not-log-me" not in output


def test_https_prints_the_ca_and_serves_it(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [GRANTKEEPER, "emulator", "--port", "0", "--https", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        ca_line = process.stdout.readline().strip()
        assert base_url.startswith("https://127.0.0.1:")
        assert ca_line == f"CA certificate: {tmp_path / 'ca.pem'}"
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with httpx.Client(base_url=base_url, timeout=10, verify=context) as http:
            assert http.get("/emulator/ca.pem").content == (tmp_path / "ca.pem").read_bytes()
            discovery = http.get("/.well-known/openid-configuration").json()
        assert discovery["token_endpoint"] == f"{base_url}/token"
    finally:
        process.terminate()
        process.communicate(timeout=10)
