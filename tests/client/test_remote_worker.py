"""A worker in another process, holding only the keeper's URL and a service key, calls Drive
with keeper-managed tokens: after the token expired, and after the user removed the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import SERVICE_KEY, Served

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("remote_worker.py")


def test_a_worker_on_another_host_uses_drive_through_the_client(served: Served) -> None:
    world = served.world
    sub = served.sign_in()
    discovery = world.emulator.base_url + "/discovery/v1/apis/{api}/{apiVersion}/rest"
    with subprocess.Popen(
        [sys.executable, str(WORKER), served.url, SERVICE_KEY, sub, discovery],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        drive_worker(served, sub, worker)


def drive_worker(served: Served, sub: str, worker: subprocess.Popen[str]) -> None:
    world = served.world
    assert worker.stdin is not None
    assert worker.stdout is not None

    def step() -> dict[str, Any]:
        line = worker.stdout.readline()  # type: ignore[union-attr]
        if not line:
            worker.wait(30)
            raise AssertionError(f"the worker stopped: {worker.stderr.read()}")  # type: ignore[union-attr]
        report: dict[str, Any] = json.loads(line)
        return report

    def go(word: str) -> None:
        worker.stdin.write(word + "\n")  # type: ignore[union-attr]
        worker.stdin.flush()  # type: ignore[union-attr]

    try:
        first = step()
        assert first["step"] == "first"
        assert first["folder"]
        assert world.refreshes() == 0

        world.emulator.control.advance_clock(2 * 3600)
        go("expired")
        after = step()
        assert after == {"step": "after_expiry", "folder": first["folder"], "new_token": True}
        assert world.refreshes() == 1  # one refresh, by the keeper, stored there

        world.emulator.control.revoke_user(sub)
        go("removed")
        revoked = step()
        assert revoked == {
            "also_refresh_error": True,
            "step": "revoked",
            "type": "GrantRevoked",
            "code": "grant_revoked",
            "status": 409,
            "reason": "revoked",
            "advice": revoked["advice"],
            "retryable": False,
        }
        assert "sign in again" in revoked["advice"]
        modules = step()
        assert modules["grantkeeper_beyond_client"] == []
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
