"""The ``grantkeeper`` command in tests: in the test's own process (typer's CliRunner), or as
the script in a process of its own.

A subprocess costs a second or two of start-up (three times that under coverage); the CLI's
runner ends every command the same way in-process as from the script (code, advice, exit code),
so tests make one call as a subprocess for the real entry point and the rest here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from grantkeeper.cli import app


@dataclass(frozen=True)
class Ran:
    """What a subprocess.CompletedProcess would say."""

    returncode: int
    stdout: str
    stderr: str


def invoke(env: Mapping[str, str], *args: str) -> Ran:
    """Run ``grantkeeper *args`` with exactly ``env``'s GRANTKEEPER_* settings."""
    settings: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("GRANTKEEPER_")
    }
    settings.update({k: v for k, v in env.items() if k.startswith("GRANTKEEPER_")})
    result = CliRunner().invoke(app, list(args), env=settings)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def script(
    env: Mapping[str, str], *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``grantkeeper *args`` as the installed script would: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def unmeasured(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without coverage.py's start-up variables, for a process the test will SIGKILL:
    a killed process never saves what coverage measured, so measuring it only slows it down."""
    return {
        k: v
        for k, v in env.items()
        if k not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    }
