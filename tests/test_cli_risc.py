"""``grantkeeper risc register|status|disable|enable`` against the emulator's stream API, as a
subprocess, authenticated with a service-account JWT as Google's guide describes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from grantkeeper.emulator import EmulatorHandle

from .cli_in_process import Ran, invoke, script
from .test_cli_access import emulator  # noqa: F401  (fixture)

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow


def service_account(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "risc-admin.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "risc-admin@my-project.iam.gserviceaccount.com",
                "private_key_id": "k1",
                "private_key": pem,
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


def run(env: dict[str, str], *args: str) -> Ran:
    return invoke(env, "risc", *args)


def run_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return script(env, "risc", *args)


def test_register_then_read_disable_and_enable_the_stream(
    emulator: EmulatorHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env.update(GRANTKEEPER_ISSUER=emulator.base_url, GRANTKEEPER_DATA_DIR=str(tmp_path))
    key = str(service_account(tmp_path))
    receiver = "http://127.0.0.1:8000/v1/google/risc"

    registered = run_process(env, "register", receiver, "--service-account", key)
    assert registered.returncode == 0, registered.stderr
    stream = json.loads(registered.stdout)
    assert stream["delivery"]["url"] == receiver
    assert stream["delivery"]["delivery_method"].endswith("/delivery-method/push")
    assert (
        "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
        in stream["events_requested"]
    )

    assert run(env, "disable", "--service-account", key).returncode == 0
    status = run(env, "status", "--service-account", key)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "disabled"
    assert run(env, "enable", "--service-account", key).returncode == 0
    assert json.loads(run(env, "status", "--service-account", key).stdout)["status"] == "enabled"

    refused = run(env, "register", "http://app.example/risc", "--service-account", key)
    assert refused.returncode == 1
    assert refused.stderr.startswith("provider_error: The RISC API refused update: HTTP 403")
