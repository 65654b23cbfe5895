"""A synchronous facade for scripts and task queues (Celery, RQ): the async keeper runs on its
own event loop in a background thread, and every call hops onto it."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.keeper.core import Keeper
from grantkeeper.keeper.results import AccessToken, DisconnectOutcome, SignInResult
from grantkeeper.keeper.sign_in_decision import Decide
from grantkeeper.settings import Settings

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials


class SyncKeeper:
    """The :class:`Keeper` for synchronous code::

    with SyncKeeper(Settings()) as keeper:
        creds = keeper.credentials(sub)
        drive = googleapiclient.discovery.build("drive", "v3", credentials=creds)
    """

    def __init__(
        self, settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK, **kwargs: Any
    ) -> None:
        self._stack = ExitStack()
        self._portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
        try:
            self.keeper = Keeper(settings, clock=clock, **kwargs)
            self._portal.call(self.keeper.open)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        try:
            self._portal.call(self.keeper.close)
        finally:
            self._stack.close()

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

        return self._portal.call(run)

    def access_token(
        self, sub: str, scopes: Iterable[str] | None = None, *, rejected: str | None = None
    ) -> AccessToken:
        """See :meth:`Keeper.access_token`; ``rejected`` is a token an API just refused."""

        async def run() -> AccessToken:
            return await self.keeper.access_token(sub, scopes, rejected=rejected)

        return self._portal.call(run)

    def refresh(self, sub: str, *, rejected: str | None = None) -> AccessToken:
        """See :meth:`Keeper.refresh`."""

        async def run() -> AccessToken:
            return await self.keeper.refresh(sub, rejected=rejected)

        return self._portal.call(run)

    def credentials(self, sub: str, scopes: Iterable[str] | None = None) -> KeeperCredentials:
        return self._portal.call(self.keeper.credentials, sub, scopes)

    def disconnect(self, sub: str, *, forget: bool = False) -> DisconnectOutcome:
        async def run() -> DisconnectOutcome:
            return await self.keeper.disconnect(sub, forget=forget)

        return self._portal.call(run)
