"""The emulator warns when its unauthenticated control API listens beyond loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grantkeeper.emulator.server import control_api_exposure


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_quiet(host: str) -> None:
    assert control_api_exposure(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "emulator.internal"])
def test_other_addresses_are_warned_about(host: str) -> None:
    warning = control_api_exposure(host)
    assert warning is not None
    assert "/emulator/" in warning


@pytest.mark.slow
def test_the_cli_prints_the_warning() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", "emulator", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert any("warning:" in line and "control API" in line for line in lines), lines
