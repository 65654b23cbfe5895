"""Key rotation: every token re-encrypted under the new primary, while the store is in use,
resumable after the process is killed mid-way; every grant still decrypts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.keeper import keys as key_ops
from grantkeeper.store import GrantStore

from ..cli_in_process import unmeasured
from .seed import CLIENT, access_of, refresh_of, seed_grants

OLD = generate_key("old")
NEW = generate_key("new")


async def _all_decrypt(store: GrantStore, subs: list[str]) -> None:
    grants = {g.sub: g for g in await store.list_grants()}
    for sub in subs:
        assert grants[sub].refresh_token == refresh_of(sub)
        assert grants[sub].access_token == access_of(sub)


@pytest.mark.anyio
async def test_rotation_rewrites_every_token_while_the_store_is_in_use(
    store_target: Any, store_clock: ManualClock
) -> None:
    old_store = await store_target.open(KeyRing.from_strings([OLD]), store_clock)
    new_store = await store_target.open(KeyRing.from_strings([NEW, OLD]), store_clock)
    try:
        subs = await seed_grants(old_store, 600)
        before = await key_ops.status(new_store)
        assert before.values_by_kid == {"old": 1200}
        assert before.stale == 1200
        assert before.retirable == []

        refreshed: dict[str, str] = {}

        async def serve() -> None:
            # A refresh lands on some grants in the middle of the rotation.
            for n, sub in enumerate(subs[::37]):
                grant = await new_store.get_grant(sub, CLIENT)
                token = f"ya29.refreshed-during-rotation-{n}"
                saved = await new_store.save_refreshed(
                    sub, CLIENT, grant.version, token, store_clock.now() + timedelta(hours=1)
                )
                assert saved
                refreshed[sub] = token
                await anyio.sleep(0.001)

        progress: list[int] = []
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            report = await key_ops.rotate(
                new_store, batch_size=50, pause=0.001, on_progress=progress.append
            )

        assert report.remaining == 0
        assert sum(progress) == report.rewritten
        after = await key_ops.status(new_store)
        assert after.values_by_kid == {"new": 1200}
        assert after.retirable == ["old"]
        grants = {g.sub: g for g in await new_store.list_grants()}
        for sub in subs:
            assert grants[sub].refresh_token == refresh_of(sub)
            assert grants[sub].access_token == refreshed.get(sub, access_of(sub))
        # A ring without the old key reads everything now.
        only_new = await store_target.open(KeyRing.from_strings([NEW]), store_clock)
        try:
            assert len(await only_new.list_grants()) == 600
        finally:
            await only_new.close()
        outcomes = [e.outcome for e in await new_store.list_audit(kind="key_rotation")]
        assert outcomes == ["completed", "started"]
    finally:
        await old_store.close()
        await new_store.close()


def _cli(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _kids(database: Path) -> dict[str, int]:
    with sqlite3.connect(database, timeout=30) as conn:
        rows = conn.execute(
            "SELECT refresh_token_kid, count(*) FROM gk_grants GROUP BY refresh_token_kid"
        ).fetchall()
    return dict(rows)


@pytest.mark.slow
@pytest.mark.slow
def test_cli_rotation_survives_a_kill_and_resumes(tmp_path: Path) -> None:
    database = tmp_path / "grants.sqlite3"
    url = f"sqlite:///{database}"
    count = 1200  # enough for several batches on each side of the kill; bench/ does 100,000

    async def seed() -> list[str]:
        store = await GrantStore.open(url, KeyRing.from_strings([OLD]), migrate=True)
        try:
            return await seed_grants(store, count)
        finally:
            await store.close()

    subs = anyio.run(seed)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")},
        "GRANTKEEPER_DATABASE_URL": url,
        "GRANTKEEPER_ENCRYPTION_KEYS": f"{NEW},{OLD}",
        "GRANTKEEPER_DATA_DIR": str(tmp_path / "data"),
    }

    # First run: killed (SIGKILL, no cleanup) once some batches are in.
    first = _cli(
        unmeasured(env), "keys", "rotate", "--batch-size", "50", "--pause", "0.05", cwd=tmp_path
    )
    deadline = time.monotonic() + 60
    while _kids(database).get("new", 0) < 150:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    partial = _kids(database)
    assert 0 < partial.get("old", 0) < count, partial

    status = subprocess.run(
        [sys.executable, "-m", "grantkeeper", "keys", "status", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(status.stdout)
    assert found["primary"] == "new"
    assert found["stale"] == found["values_by_kid"]["old"] > 0

    # Second run: picks up where the first stopped.
    second = _cli(env, "keys", "rotate", "--batch-size", "500", cwd=tmp_path)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert "0 left under old keys" in stdout
    assert _kids(database) == {"new": count}

    status = subprocess.run(
        [sys.executable, "-m", "grantkeeper", "keys", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Unused, can be removed from the ring: old" in status.stdout

    async def verify() -> None:
        store = await GrantStore.open(url, KeyRing.from_strings([NEW]))
        try:
            await _all_decrypt(store, subs)
            outcomes = [e.outcome for e in await store.list_audit(kind="key_rotation")]
            assert outcomes == ["completed", "started", "started"]
        finally:
            await store.close()

    anyio.run(verify)
