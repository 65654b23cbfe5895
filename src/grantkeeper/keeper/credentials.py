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
from typing import Any, cast

from google.auth import exceptions as google_exceptions
from google.oauth2 import credentials as google_credentials

from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper.results import AccessToken

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

    def _set(self, token: AccessToken) -> None:
        self.token = token.token
        # google-auth compares naive UTC datetimes.
        self.expiry = token.expires_at.astimezone(UTC).replace(tzinfo=None)

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
        with self._lock:
            rejected = self.token
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


#: grantkeeper error class -> its twin that is also a google-auth RefreshError.
_TWINS: dict[type[GrantkeeperError], type[Any]] = {}


def as_refresh_error(error: GrantkeeperError) -> GrantkeeperError:
    """The same error as an instance of a class that is both its own class and google-auth's
    ``RefreshError``.

    google-auth and googleapiclient expect ``refresh`` to raise ``RefreshError`` (and pass it
    up unchanged); the job wants the typed error (``GrantRevoked``, ``MissingScopes`` …). The
    twin satisfies both ``except`` clauses and keeps ``code``, ``reason``, ``advice`` and
    ``retryable``.
    """
    kind = type(error)
    twin_class = _TWINS.get(kind)
    if twin_class is None:
        twin_class = type(
            kind.__name__,
            (kind, google_exceptions.RefreshError),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
        _TWINS[kind] = twin_class
    twin = cast(GrantkeeperError, Exception.__new__(twin_class))
    twin.__dict__.update(error.__dict__)
    twin.args = error.args
    twin.__dict__["_retryable"] = error.retryable  # what google-auth's retry logic reads
    return twin


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _awaited(pending: Awaitable[AccessToken]) -> AccessToken:
    return await pending
