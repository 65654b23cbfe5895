"""Several keeper processes on one store: one refresh per grant across processes, and no grant
lost when a refreshing process is killed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.keeper import Keeper

from .conftest import World

pytestmark = pytest.mark.anyio

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


def start_worker(config: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.keeper.refresh_worker", config],
        cwd=ROOT,
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
    grant = await keeper_with_key.store.get_grant(result.sub)
    assert grant is not None
    assert grant.access_token == tokens[0]
