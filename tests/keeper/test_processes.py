"""Several keeper processes on one store: one refresh per grant across processes, and no grant
lost when a refreshing process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.keeper import Keeper

from ..app_world import store_of
from ..cli_in_process import unmeasured
from .conftest import World

# Starts processes: outside the quick loop (make test-quick).
pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def worker_config(world: World, store_target: Any, key: str, sub: str, **extra: Any) -> str:
    offset = (world.emulator.state.clock.now() - datetime.now(UTC)).total_seconds()
    settings = {
        "client_secrets_file": str(world.settings.client_secrets_file),
        "issuer": world.settings.issuer,
        "allowed_client_ids": ",".join(world.settings.allowed_client_ids),
        "database_url": store_target.url,
        "database_schema": store_target.schema,
        "encryption_keys": key,
        "data_dir": str(world.settings.data_dir),
    }
    return json.dumps({"settings": settings, "clock_offset": offset, "sub": sub, **extra})


def start_worker(config: str, *, to_be_killed: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.keeper.refresh_worker", config],
        cwd=ROOT,
        env=unmeasured(os.environ) if to_be_killed else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def shared_key() -> str:
    return generate_key("shared")


@pytest.fixture
async def keeper_with_key(world: World, store_target: Any, shared_key: str) -> Any:
    settings = world.settings.model_copy(
        update={
            "database_url": store_target.url,
            "database_schema": store_target.schema,
            "encryption_keys": [shared_key],
        }
    )
    async with Keeper(settings, clock=world.emulator.state.clock) as keeper:
        yield keeper


async def test_four_processes_fifty_callers_each_one_refresh(
    keeper_with_key: Keeper, world: World, store_target: Any, shared_key: str, tmp_path: Path
) -> None:
    result = await keeper_with_key.sign_in(world.code())
    world.emulator.control.advance_clock(2 * 3600)
    go = tmp_path / "go"
    config = worker_config(world, store_target, shared_key, result.sub, callers=50, go_file=str(go))
    workers = [start_worker(config) for _ in range(4)]
    tokens: list[str] = []
    try:
        for worker in workers:
            assert worker.stderr is not None
            line = worker.stderr.readline()
            assert line.strip() == "ready", line + worker.stderr.read()
        go.touch()
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            tokens.extend(json.loads(out)["tokens"])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    assert len(tokens) == 200
    assert len(set(tokens)) == 1
    assert world.refreshes() == 1
    grant = await store_of(keeper_with_key).get_grant(result.sub)
    assert grant is not None
    assert grant.access_token == tokens[0]


async def test_a_refresher_killed_mid_refresh_never_loses_the_grant(
    keeper_with_key: Keeper, world: World, store_target: Any, shared_key: str, tmp_path: Path
) -> None:
    control = world.emulator.control
    control.update_settings(rotate_refresh_tokens=True, response_delay_ms=300)
    result = await keeper_with_key.sign_in(world.code())
    kills_after_provider_acted = 0
    # Four kills here (two after Google rotated the token); make chaos kills 50 per store.
    for round_ in range(4):
        control.advance_clock(2 * 3600)
        go = tmp_path / f"go-{round_}"
        config = worker_config(
            world, store_target, shared_key, result.sub, callers=1, go_file=str(go)
        )
        before = world.refreshes()
        worker = start_worker(config, to_be_killed=True)
        try:
            assert worker.stderr is not None
            assert worker.stderr.readline().strip() == "ready"
            go.touch()
            if round_ % 2 == 0:
                # The provider has rotated the refresh token; its answer is still on the way.
                deadline = time.monotonic() + 30
                while world.refreshes() == before:
                    assert time.monotonic() < deadline, "the worker never refreshed"
                    time.sleep(0.005)
                kills_after_provider_acted += 1
            else:
                time.sleep(0.05 * round_)  # somewhere before or during the call
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.communicate(timeout=60)
        assert worker.returncode == -signal.SIGKILL
    assert kills_after_provider_acted == 2
    # Every time: the grant still works, from another process and from this one.
    control.advance_clock(2 * 3600)
    go = tmp_path / "go-final"
    go.touch()
    worker = start_worker(
        worker_config(world, store_target, shared_key, result.sub, callers=3, go_file=str(go))
    )
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    tokens = json.loads(out)["tokens"]
    assert world.emulator.state.lookup_access_token(tokens[0]) is not None
    control.advance_clock(2 * 3600)
    token = await keeper_with_key.access_token(result.sub)
    assert token.refreshed
    grant = await store_of(keeper_with_key).get_grant(result.sub)
    assert grant is not None
    assert grant.status == "active"
