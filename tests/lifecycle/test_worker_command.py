"""``grantkeeper worker``: one round with ``--once`` does the sweep's and key maintenance's
work; the long-running form stops at once on SIGTERM. The schedule itself runs in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO

import pytest
from standardwebhooks import Webhook

from grantkeeper.crypto import generate_key
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.sync import SyncKeeper
from grantkeeper.webhooks import generate_secret
from grantkeeper.worker import Job, Worker, default_jobs, parse_duration

from .conftest import World
from .webhook_sink import webhook_sink

OLD = generate_key("old")
NEW = generate_key("new")


def worker_env(world: World, keys: str) -> dict[str, str]:
    settings = world.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env.update(
        GRANTKEEPER_CLIENT_SECRETS_FILE=str(settings.client_secrets_file),
        GRANTKEEPER_ISSUER=settings.issuer,
        GRANTKEEPER_ALLOWED_CLIENT_IDS=",".join(settings.allowed_client_ids),
        GRANTKEEPER_DATA_DIR=str(settings.data_dir),
        GRANTKEEPER_ENCRYPTION_KEYS=keys,
    )
    return env


@pytest.mark.slow
def test_once_retries_a_pending_revocation_and_re_encrypts_under_the_new_key(
    world: World,
) -> None:
    settings = world.settings.model_copy(update={"encryption_keys": [OLD]})
    world.emulator.control.create_user("bob@example.com")
    with SyncKeeper(settings) as keeper:
        ada = keeper.sign_in(world.code()).sub
        bob = keeper.sign_in(world.code(email="bob@example.com")).sub
        world.emulator.control.add_fault("revoke", status=503, count=None)
        assert keeper.disconnect(ada).pending
    world.emulator.control.clear_faults()

    secret = generate_secret()
    with webhook_sink() as sink:
        env = worker_env(world, f"{NEW},{OLD}")
        env.update(GRANTKEEPER_WEBHOOK_URL=sink.url, GRANTKEEPER_WEBHOOK_SECRET=secret)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "grantkeeper", "worker", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 30
        assert "sweep: 2 grants" in done.stderr
        assert "revocation_completed 1" in done.stderr
        assert "keys: re-encrypted 2 values under new; 0 left" in done.stderr
        # The revocation the sweep completed is announced by the worker's webhooks job.
        assert "webhooks: delivered 1, to retry 0, failed 0" in done.stderr
        (received,) = sink.wait_for(1)
    assert Webhook(secret).verify(received.body, received.headers)["type"] == "grant.revoked"
    assert world.stats()["live_refresh_tokens_per_user"].get(ada, 0) == 0

    async def after() -> None:
        async with Keeper(settings.model_copy(update={"encryption_keys": [NEW]})) as keeper:
            assert (await keeper.key_status()).values_by_kid == {"new": 2}
            assert (await keeper.user(ada)).grants[0].status == "disconnected"
            assert (await keeper.access_token(bob)).token  # decrypts under NEW alone

    asyncio.run(after())


@pytest.fixture
def long_running(world: World) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "grantkeeper", "worker", "--sweep-every", "1h"],
        env=worker_env(world, NEW),
        stderr=subprocess.PIPE,
        text=True,
    )
    with process:  # closes the pipe
        yield process
        if process.poll() is None:
            process.kill()


def read_until(stream: IO[str], text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    seen = ""
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in: {seen}"
        line = stream.readline()
        assert line, f"the worker ended before {text!r}: {seen}"
        seen += line
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_long_running_worker_stops_at_once_on_a_signal(
    long_running: subprocess.Popen[str], signum: signal.Signals
) -> None:
    assert long_running.stderr is not None
    read_until(long_running.stderr, "keys: ", 60)  # the first round is done; now it waits
    asked = time.monotonic()
    long_running.send_signal(signum)
    assert long_running.wait(timeout=10) == 0
    assert time.monotonic() - asked < 3
    rest = long_running.stderr.read()
    assert f"worker stopping ({signum.name})" in rest
    assert "worker stopped" in rest
    assert "Traceback" not in rest


# -- the schedule, in-process ------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_an_operator_writes_them() -> None:
    assert [parse_duration(t) for t in ("90", "30s", "15m", "1h", "1d", "0")] == [
        90,
        30,
        900,
        3600,
        86400,
        0,
    ]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("an hour")


def test_a_job_turned_off_is_left_out_and_another_can_be_plugged_in() -> None:
    assert [job.name for job in default_jobs()] == ["sweep", "keys"]
    assert [job.name for job in default_jobs(keys_every=0, webhooks_every=30)] == [
        "sweep",
        "webhooks",
    ]
    assert [job.name for job in default_jobs(sweep_every=0, keys_every=0)] == []

    async def deliver(_: Keeper) -> str:
        return "0 webhooks delivered"

    jobs = [*default_jobs(), Job("deliveries", 5, deliver)]
    assert [job.name for job in jobs] == ["sweep", "keys", "deliveries"]


def test_each_job_runs_when_due_and_a_failure_does_not_stop_the_others() -> None:
    clock = FakeMonotonic()
    runs: list[tuple[str, float]] = []
    jobs: list[Job] = []

    def job(name: str, every: float, *, fail: bool = False) -> Job:
        async def run(_: Keeper) -> str:
            runs.append((name, clock.now))
            if len(runs) == 7:
                worker.stop()
            if fail:
                raise RuntimeError("a bug in a job")
            clock.now += 1  # each run that works takes a second
            return "ok"

        return Job(name, every, run)

    async def idle(seconds: float) -> None:
        clock.now += seconds  # the wait for the next due job passes at once

    jobs = [job("fast", 10), job("slow", 25), job("broken", 20, fail=True)]
    worker = Worker(None, jobs, monotonic=clock, idle=idle)  # type: ignore[arg-type]
    asyncio.run(worker.run_forever())
    assert runs == [
        ("fast", 0),
        ("slow", 1),
        ("broken", 2),
        ("fast", 10),
        ("fast", 20),
        ("broken", 22),
        ("slow", 26),
    ]


def test_a_job_still_running_on_stop_gets_its_grace_then_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def stuck(_: Keeper) -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def main() -> float:
        worker = Worker(None, [Job("stuck", 60, stuck)], grace=0.05)  # type: ignore[arg-type]
        running = asyncio.create_task(worker.run_forever())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        worker.stop()
        await asyncio.wait_for(running, 5)
        return time.monotonic() - started

    assert asyncio.run(main()) < 1
    assert cancelled.is_set()


def test_a_round_stopped_before_its_last_jobs_counts_them_as_failed() -> None:
    # `worker --once` ended by SIGTERM after its first job must not exit 0 as if all ran.
    async def first(_: Keeper) -> str:
        worker.stop()
        return "ok"

    async def never(_: Keeper) -> str:
        raise AssertionError("a job run after the stop")

    worker = Worker(None, [Job("first", 60, first), Job("second", 60, never)])  # type: ignore[arg-type]
    outcomes = asyncio.run(worker.run_once())
    assert [(o.name, o.ok) for o in outcomes] == [("first", True), ("second", False)]
    assert outcomes[1].summary.startswith("skipped")
