"""SyncKeeper under fork: a worker forked after the keeper was made (gunicorn --preload, uWSGI,
Celery prefork) signs a user in with a keeper of its own; the parent keeps working and exits
without closing it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from grantkeeper.crypto import generate_key

from .conftest import World
from .test_processes import ROOT, worker_config

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow


def test_a_forked_worker_signs_in_and_nobody_hangs(world: World, store_target: Any) -> None:
    config = worker_config(
        world, store_target, generate_key("fork"), world.sub, codes=[world.code(), world.code()]
    )
    process = subprocess.run(
        [sys.executable, "-m", "tests.keeper.forked_worker", config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # before the fix: the child hung on the parent's loop thread
        check=False,
    )
    assert process.returncode == 0, process.stderr
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    child = next(line for line in lines if line["who"] == "child")
    parent = next(line for line in lines if line["who"] == "parent")
    assert child == {"who": "child", "sub": world.sub, "token": True}
    assert parent == {"who": "parent", "child_status": 0, "token": True}
