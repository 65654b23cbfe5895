"""``grantkeeper worker``: the sweep and key maintenance on a schedule, for a deployment that
serves through the library (``SyncKeeper``/``Keeper`` in the app, no ``grantkeeper serve``)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import signal
from collections.abc import Callable
from datetime import timedelta

import typer

from grantkeeper._cli.runner import EXIT_FAILED, run
from grantkeeper.keeper import Keeper
from grantkeeper.logsafety import process_log_config
from grantkeeper.settings import Settings
from grantkeeper.worker import Job, Worker, default_jobs, describe_duration, parse_duration

log = logging.getLogger("grantkeeper.worker")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def worker(
    once: bool = typer.Option(
        False, "--once", help="Run every job one time and exit (for cron); exit 1 if one failed."
    ),
    sweep_every: float = typer.Option(
        "1h",
        "--sweep-every",
        parser=_duration,
        metavar="DURATION",
        help="Time between sweeps: pending revocations, expiring grants, keep-alive "
        "(30s, 15m, 1h, 1d; 0 turns the sweep off).",
    ),
    keys_every: float = typer.Option(
        "1d",
        "--keys-every",
        parser=_duration,
        metavar="DURATION",
        help="Time between key maintenance runs: values under an old encryption key are "
        "re-encrypted under the primary one (0 turns it off).",
    ),
    webhooks_every: float = typer.Option(
        "30s",
        "--webhooks-every",
        parser=_duration,
        metavar="DURATION",
        help="With GRANTKEEPER_WEBHOOK_URL set: time between deliveries of the outbox's due "
        "notifications (0 turns it off; serve and SyncKeeper deliver too, safely).",
    ),
    keep_alive: bool = typer.Option(
        True,
        "--keep-alive/--no-keep-alive",
        help="Refresh idle grants so Google does not drop them.",
    ),
    idle_days: int = typer.Option(90, "--idle-days", min=1, help="A grant is idle after this."),
    expiring_days: int = typer.Option(
        3, "--expiring-days", min=0, help="Warn about time-limited grants ending this soon."
    ),
    grace: float = typer.Option(
        10.0,
        "--grace",
        min=0.0,
        help="On SIGTERM or SIGINT, seconds a running job may take to finish before it is "
        "cancelled; delivering the webhooks left at close gets as long again at most.",
    ),
) -> None:
    """Run the sweep, key maintenance and webhook delivery on a schedule until SIGTERM/SIGINT
    (or once, with --once), logging each run: the periodic work of a deployment without
    grantkeeper serve."""
    settings = Settings()
    logging.config.dictConfig(process_log_config(settings.log_format))
    jobs = default_jobs(
        sweep_every=sweep_every,
        keys_every=keys_every,
        webhooks_every=webhooks_every if settings.webhook_url else 0.0,
        keep_alive=keep_alive,
        idle_after=timedelta(days=idle_days),
        expiring_within=timedelta(days=expiring_days),
    )
    if not jobs:
        raise typer.BadParameter("every job is turned off", param_hint="--sweep-every/--keys-every")
    failed = run(_work(settings, jobs, once=once, grace=grace))
    if failed:
        raise typer.Exit(EXIT_FAILED)


async def _work(settings: Settings, jobs: list[Job], *, once: bool, grace: float) -> int:
    """Open the keeper, run the jobs, close it; the number of failed runs (``--once``)."""
    keeper = await Keeper(settings).open()
    try:
        worker = Worker(keeper, jobs, grace=grace)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _stopper(worker, signum))
        try:
            return await _rounds(settings, jobs, worker, once=once)
        finally:
            # The jobs are over; closing the keeper may still drain webhooks (within the grace
            # too): a second SIGTERM or Ctrl-C then ends the process the default way.
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    finally:
        # A stop is bounded by --grace: the jobs get it, and so does the last webhook round.
        await keeper.close(webhook_drain=grace)


async def _rounds(settings: Settings, jobs: list[Job], worker: Worker, *, once: bool) -> int:
    if settings.client_secrets_file is None:
        log.warning(
            "no GRANTKEEPER_CLIENT_SECRETS_FILE: the sweep only reports (no revocation "
            "retried, no grant kept alive)"
        )
    plan = ", ".join(f"{job.name} every {describe_duration(job.every)}" for job in jobs)
    if once:
        log.info("worker: one round (%s)", ", ".join(job.name for job in jobs))
        outcomes = await worker.run_once()
        return sum(not outcome.ok for outcome in outcomes)
    log.info("worker started: %s; SIGTERM or SIGINT stops it", plan)
    await worker.run_forever()
    log.info("worker stopped")
    return 0


def _stopper(worker: Worker, signum: signal.Signals) -> Callable[[], None]:
    def stop() -> None:
        if not worker.stopping:
            log.info("worker stopping (%s)", signum.name)
        worker.stop()

    return stop
