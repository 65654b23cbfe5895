"""An asyncio event loop on a daemon thread, for the synchronous facade.

Daemon, so a process that never closes its :class:`~grantkeeper.keeper.sync.SyncKeeper` still
exits at once (Python joins non-daemon threads *before* it runs ``atexit`` handlers, so a
non-daemon loop thread would hold the exit until something closed it). The facade closes what
is still open from ``atexit``, with a bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """One event loop running forever on its own daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "grantkeeper-sync") -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), name=name, daemon=True)
        self.thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()
        self.loop.close()

    def call(
        self, function: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``function(*args)`` on the loop and wait for its result (or its exception)."""

        async def run() -> T:
            return await function(*args)

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for its thread (called once, from the owner's thread)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
