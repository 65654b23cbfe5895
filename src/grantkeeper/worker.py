"""The periodic work of a deployment that serves through the library (no ``grantkeeper serve``):
``grantkeeper worker`` runs it on a schedule, or one round of it and exits (``--once``, cron).

A :class:`Job` is a name, an interval and an async function of the open keeper that returns a
one-line summary for the log. The default jobs (:func:`default_jobs`) are

- ``sweep``: pending revocations retried, ``grant.expiring`` webhooks, idle grants kept alive
  (:meth:`Keeper.sweep <grantkeeper.keeper.Keeper.sweep>`), safe on several hosts at once;
- ``keys``: values still sealed under an old encryption key re-encrypted under the primary one
  (:meth:`Keeper.rotate_keys <grantkeeper.keeper.Keeper.rotate_keys>`), safe to interrupt;
- ``webhooks`` (when a webhook is configured): the outbox's notifications that are due sent,
  one attempt each (:meth:`Keeper.deliver_webhooks
  <grantkeeper.keeper.Keeper.deliver_webhooks>`), safe beside other deliverers.

Another periodic job (a webhook delivery loop, an app's own chore) is one more :class:`Job` in
the list the :class:`Worker` is given. Jobs run one after the other, never two at once; a job's
failure is logged and it runs again at its next turn. Only the keeper's public API is used.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper import Keeper, SweepOptions

__all__ = [
    "Job",
    "JobOutcome",
    "Worker",
    "default_jobs",
    "describe_duration",
    "key_maintenance_job",
    "parse_duration",
    "sweep_job",
    "webhook_delivery_job",
]

log = logging.getLogger("grantkeeper.worker")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h`` or ``1d`` in seconds (``0`` is allowed: a job that
    never runs)."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 1h or 1d")
    return float(found[1]) * _UNITS[found[2] or "s"]


def describe_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: float
    """Seconds from the start of one run to the start of the next."""
    run: Callable[[Keeper], Awaitable[str]]
    """The work; returns a one-line summary for the log (never a token)."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    name: str
    ok: bool
    summary: str
    seconds: float


def sweep_job(options: SweepOptions, every: float) -> Job:
    async def run(keeper: Keeper) -> str:
        report = await keeper.sweep(options)
        states = ", ".join(f"{state} {n}" for state, n in report.counts.items() if n)
        actions = ", ".join(f"{action} {n}" for action, n in report.actions.items())
        return f"{report.total} grants ({states or 'none'}); {actions or 'nothing to do'}"

    return Job("sweep", every, run)


def key_maintenance_job(every: float, *, batch_size: int = 500, pause: float = 0.0) -> Job:
    async def run(keeper: Keeper) -> str:
        status = await keeper.key_status()
        if status.unknown:
            # Not this job's to fix: an operator must put the missing key back in the ring.
            log.warning(
                "values under keys the ring lacks cannot be decrypted: %s (see grantkeeper keys "
                "status)",
                ", ".join(status.unknown),
            )
        rotatable = sum(
            n
            for kid, n in status.values_by_kid.items()
            if kid != status.primary and kid in status.ring
        )
        if not rotatable:
            return f"every readable value is under the primary key {status.primary}"
        report = await keeper.rotate_keys(batch_size=batch_size, pause=pause)
        return (
            f"re-encrypted {report.rewritten} values under {report.primary}; "
            f"{report.remaining} left under other keys"
        )

    return Job("keys", every, run)


def webhook_delivery_job(every: float) -> Job:
    async def run(keeper: Keeper) -> str:
        report = await keeper.deliver_webhooks()
        return f"delivered {report.delivered}, to retry {report.retried}, failed {report.failed}"

    return Job("webhooks", every, run)


def default_jobs(
    *,
    sweep_every: float = 3600.0,
    keys_every: float = 86400.0,
    webhooks_every: float = 0.0,
    keep_alive: bool = True,
    idle_after: timedelta = timedelta(days=90),
    expiring_within: timedelta = timedelta(days=3),
) -> list[Job]:
    """The sweep, key maintenance and (given an interval) webhook delivery; an interval of 0
    leaves that job out."""
    options = SweepOptions(
        idle_after=idle_after, expiring_within=expiring_within, keep_alive=keep_alive
    )
    jobs = [
        sweep_job(options, sweep_every),
        key_maintenance_job(keys_every),
        webhook_delivery_job(webhooks_every),
    ]
    return [job for job in jobs if job.every > 0]


class Worker:
    """Runs ``jobs`` against an open keeper until :meth:`stop`.

    Args:
        keeper: an open :class:`Keeper`.
        jobs: what to run; each is due at start, then every ``job.every`` seconds.
        grace: after :meth:`stop`, how long a running job may take to finish before it is
            cancelled (the sweep and key rotation are safe to interrupt).
        monotonic: the clock of the schedule.
        idle: how the worker waits ``seconds`` for the next due job; by default until then or
            until :meth:`stop` (tests pass one that moves their clock).
    """

    def __init__(
        self,
        keeper: Keeper,
        jobs: Sequence[Job],
        *,
        grace: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        idle: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.keeper = keeper
        self.jobs = list(jobs)
        self.grace = grace
        self._monotonic = monotonic
        self._idle = idle or self._until_stopped
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the worker to end: no new job starts; a running one gets ``grace`` seconds."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run_once(self) -> list[JobOutcome]:
        """Every job one time, in order (``grantkeeper worker --once``). A job a stop kept
        from running is a failed outcome (``skipped``): the round did not do its work, and
        ``--once`` must not exit 0 as if it had."""
        outcomes = []
        for job in self.jobs:
            if self.stopping:
                log.warning("%s: skipped, the worker was stopped", job.name)
                outcomes.append(JobOutcome(job.name, False, "skipped: the worker was stopped", 0.0))
                continue
            outcomes.append(await self._run(job))
        return outcomes

    async def run_forever(self) -> None:
        """Run each job when it is due until :meth:`stop`."""
        due = {job.name: self._monotonic() for job in self.jobs}
        while not self.stopping:
            for job in self.jobs:
                if self.stopping:
                    return
                if self._monotonic() >= due[job.name]:
                    due[job.name] = self._monotonic() + job.every
                    await self._run(job)
            if not self.jobs:
                await self._stopping.wait()
                return
            await self._idle(max(0.0, min(due.values()) - self._monotonic()))

    async def _until_stopped(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def _run(self, job: Job) -> JobOutcome:
        started = self._monotonic()
        task = asyncio.ensure_future(job.run(self.keeper))
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # asked to stop: let the job finish within the grace period
                log.info(
                    "%s: still running; waiting %gs for it before stopping", job.name, self.grace
                )
                done, _ = await asyncio.wait({task}, timeout=self.grace)
                if not done:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    log.warning("%s: cancelled on stop (it resumes on the next run)", job.name)
                    return JobOutcome(job.name, False, "cancelled", self._monotonic() - started)
            summary = task.result()
        except GrantkeeperError as error:
            seconds = self._monotonic() - started
            log.error(
                "%s: failed after %.1fs: %s: %s", job.name, seconds, error.code, error.message
            )
            return JobOutcome(job.name, False, f"{error.code}: {error.message}", seconds)
        except Exception:
            # A long-running worker outlives one bad run; the traceback is for the operator.
            seconds = self._monotonic() - started
            log.exception("%s: failed after %.1fs", job.name, seconds)
            return JobOutcome(job.name, False, "unexpected error (see the log)", seconds)
        finally:
            stop_wait.cancel()
        seconds = self._monotonic() - started
        log.info("%s: %s (%.1fs)", job.name, summary, seconds)
        return JobOutcome(job.name, True, summary, seconds)
