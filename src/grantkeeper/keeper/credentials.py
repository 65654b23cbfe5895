"""google-auth credentials whose refresh goes through the keeper.

google-auth's own refresh would need the refresh token in the worker's memory and has no hook to
persist what it gets back; these credentials never hold the refresh token. When googleapiclient
finds the token expired, or an API answers 401, ``refresh`` asks the keeper, which refreshes at
most once per grant across threads and processes and stores the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

from google.auth import exceptions as google_exceptions
from google.oauth2 import credentials as google_credentials

from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper.results import AccessToken
from grantkeeper.refresh_errors import as_refresh_error

#: Asks the keeper for a fresh token, never the one named (it was just refused).
TokenFetch = Callable[[str | None], Awaitable[AccessToken]]

#: How long a synchronous caller waits for the keeper (refresh retries included).
_WAIT_SECONDS = 120.0


class KeeperCredentials(google_credentials.Credentials):
    """Credentials for one user; ``refresh`` goes through the :class:`Keeper`.

    Made by :meth:`Keeper.credentials`: ``fetch`` runs on the keeper's event ``loop``.
    """

    def __init__(
        self,
        fetch: TokenFetch,
        loop: asyncio.AbstractEventLoop,
        token: AccessToken,
        scopes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(token=token.token, scopes=scopes)
        self._fetch = fetch
        self._loop = loop
        self.sub = token.sub
        self._set(token)
        self._lock = threading.Lock()
        self._applied = threading.local()

    def _set(self, token: AccessToken) -> None:
        self.token = token.token
        # google-auth compares naive UTC datetimes.
        self.expiry = token.expires_at.astimezone(UTC).replace(tzinfo=None)

    def apply(self, headers: Any, token: str | None = None) -> None:
        super().apply(headers, token=token)
        self._applied.token = token or self.token

    def refresh(self, request: Any) -> None:
        """Get a fresh token from the keeper (``request`` is unused: the keeper talks to the
        provider with its own client). A token that just failed is never handed back."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise google_exceptions.RefreshError("The keeper behind these credentials is closed.")
        if _running_in(loop):
            raise google_exceptions.RefreshError(
                "These credentials were used on the keeper's event-loop thread; call "
                "googleapiclient from a worker thread (asyncio.to_thread) instead of blocking "
                "the loop."
            )
        # The token this thread's request carried: threads that met the same 401 queue on the
        # lock, and the first one's new token serves the others without another call.
        rejected = getattr(self._applied, "token", None) or self.token
        with self._lock:
            if self.token != rejected and self.valid:
                return
            future = asyncio.run_coroutine_threadsafe(_awaited(self._fetch(rejected)), loop)
            try:
                token = future.result(_WAIT_SECONDS)
            except GrantkeeperError as error:
                raise as_refresh_error(error) from None
            except concurrent.futures.TimeoutError as error:
                future.cancel()
                raise google_exceptions.RefreshError(
                    "The keeper did not produce a token in time.", retryable=True
                ) from error
            self._set(token)


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _awaited(pending: Awaitable[AccessToken]) -> AccessToken:
    return await pending
