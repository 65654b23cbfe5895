"""The CLI as a user meets it: a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

import grantkeeper

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"grantkeeper {grantkeeper.__version__}"


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout
