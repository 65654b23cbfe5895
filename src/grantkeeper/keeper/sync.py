"""A synchronous facade for web apps, scripts and task queues: the async keeper runs on its own
event loop in a background thread, and every call hops onto it.

Fork-safe: a process that made a :class:`SyncKeeper` and then forks (``gunicorn --preload``,
uWSGI without lazy-apps, Celery's prefork pool, ``multiprocessing`` with fork) gives each child
a keeper of its own on first use: a fresh loop thread, store connections and HTTP client. The
parent's loop thread does not exist in the child, and its connections are the parent's, so the
child leaves them alone (never closes them: that would cut the parent's sockets) and builds
anew. Credentials made before the fork belong to the parent: make them in the child.

Shutdown-safe: the loop thread is a daemon and every keeper still open is closed from
``atexit`` (a few seconds at most), so a process that imported it exits at once.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.keeper.core import Keeper
from grantkeeper.keeper.loop_thread import LoopThread
from grantkeeper.keeper.results import AccessToken, DisconnectOutcome, SignInResult
from grantkeeper.keeper.sign_in_decision import Decide
from grantkeeper.settings import Settings

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials

T = TypeVar("T")

#: How long closing at interpreter exit may take per keeper (webhooks in flight included).
EXIT_CLOSE_SECONDS = 5.0

_open_keepers: weakref.WeakSet[SyncKeeper] = weakref.WeakSet()
#: What a forked child inherited and must never touch (nor let the garbage collector close).
_inherited: list[object] = []


class SyncKeeper:
    """The :class:`Keeper` for synchronous code::

    with SyncKeeper(Settings()) as keeper:
        creds = keeper.credentials(sub)
        drive = googleapiclient.discovery.build("drive", "v3", credentials=creds)
    """

    def __init__(
        self, settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK, **kwargs: Any
    ) -> None:
        self._settings = settings or Settings()
        self._clock = clock
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._closed = False
        self._start()
        _open_keepers.add(self)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._thread = LoopThread()
        try:
            self.keeper = Keeper(self._settings, clock=self._clock, **self._kwargs)
            self._thread.call(self.keeper.open)
            # The loop runs as long as the keeper: it delivers the webhook outbox too.
            self._thread.call(self.keeper.start_webhook_delivery)
        except BaseException:
            self._thread.stop()
            raise

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._pid != os.getpid():
            self._rebuild_after_fork()
        return self._thread.call(function, *args)

    def _rebuild_after_fork(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._closed:
                raise RuntimeError("This SyncKeeper was closed before the process forked.")
            _inherited.extend((self._thread, self.keeper))
            self._start()

    def close(self, timeout: float | None = None) -> None:
        """Close the keeper (the webhooks it wrote get one more try, up to 30 s, or ``timeout``)
        and its loop."""
        if self._closed:
            return
        self._closed = True
        _open_keepers.discard(self)
        if self._pid != os.getpid():
            return  # the parent's: not ours to close
        try:
            self._thread.call(self.keeper.close, timeout=timeout)
        finally:
            self._thread.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def sign_in(
        self,
        code: str,
        platform: str = "ios",
        *,
        nonce: str | None = None,
        idempotency_key: str | None = None,
        decide: Decide | None = None,
    ) -> SignInResult:
        """See :meth:`Keeper.sign_in`; a plain-function ``decide`` runs in a worker thread."""

        async def run() -> SignInResult:
            return await self.keeper.sign_in(
                code, platform, nonce=nonce, idempotency_key=idempotency_key, decide=decide
            )

        return self._call(run)

    def access_token(
        self, sub: str, scopes: Iterable[str] | None = None, *, rejected: str | None = None
    ) -> AccessToken:
        """See :meth:`Keeper.access_token`; ``rejected`` is a token an API just refused."""

        async def run() -> AccessToken:
            return await self.keeper.access_token(sub, scopes, rejected=rejected)

        return self._call(run)

    def refresh(self, sub: str, *, rejected: str | None = None) -> AccessToken:
        """See :meth:`Keeper.refresh`."""

        async def run() -> AccessToken:
            return await self.keeper.refresh(sub, rejected=rejected)

        return self._call(run)

    def credentials(self, sub: str, scopes: Iterable[str] | None = None) -> KeeperCredentials:
        return self._call(self.keeper.credentials, sub, scopes)

    def disconnect(self, sub: str, *, forget: bool = False) -> DisconnectOutcome:
        async def run() -> DisconnectOutcome:
            return await self.keeper.disconnect(sub, forget=forget)

        return self._call(run)


@atexit.register
def _close_open_keepers() -> None:
    for keeper in list(_open_keepers):
        with contextlib.suppress(Exception):  # exiting: nothing left to tell
            keeper.close(timeout=EXIT_CLOSE_SECONDS)
