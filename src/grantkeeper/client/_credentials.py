"""google-auth credentials whose refresh asks the keeper over HTTP.

googleapiclient (through google-auth-httplib2) refreshes credentials before a request when they
look expired, and once more when an API answers 401. Either way these credentials send the token
they hold as the refused one: the keeper answers with a newer token if it stores one, else it
refreshes (once per grant, however many workers ask). The refresh token never leaves the keeper.
Errors are grantkeeper's own exceptions (``GrantRevoked`` when the user removed the app, …), so a
worker tells "ask the user to sign in again" from "retry later".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from google.oauth2 import credentials as google_credentials

from grantkeeper.errors import GrantkeeperError
from grantkeeper.refresh_errors import as_refresh_error

if TYPE_CHECKING:
    from grantkeeper.client._wire import Token


class RemoteCredentials(google_credentials.Credentials):
    """Credentials for one user; made by ``TokenClient.credentials`` (or the async client's).

    ``fetch(rejected)`` returns a token other than ``rejected``.
    """

    def __init__(
        self,
        fetch: Callable[[str | None], Token],
        token: Token,
        scopes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(token=token.token, scopes=scopes)
        self._fetch = fetch
        self.sub = token.sub
        self._lock = threading.Lock()
        # The token this thread last put in a request: on a 401 it is the refused one.
        self._applied = threading.local()
        self._set(token)

    def _set(self, token: Token) -> None:
        self.token = token.token
        # google-auth compares naive UTC datetimes.
        self.expiry = token.expires_at.astimezone(UTC).replace(tzinfo=None)

    def apply(self, headers: Any, token: str | None = None) -> None:
        super().apply(headers, token=token)
        self._applied.token = token or self.token

    def refresh(self, request: Any) -> None:
        """Ask the keeper for a token other than the one this thread's request was refused
        with (``request`` is unused).

        Threads that met the same 401 queue here; the first one's answer serves the others
        without another call.

        Raises:
            grantkeeper.GrantkeeperError: a subclass naming why (``GrantRevoked``, …) that is
                also google-auth's ``RefreshError``, so either ``except`` clause catches it.
        """
        refused = getattr(self._applied, "token", None) or self.token
        with self._lock:
            if self.token != refused and self.valid:
                return  # another thread already replaced the refused token
            try:
                token = self._fetch(refused)
            except GrantkeeperError as error:
                raise as_refresh_error(error) from None
            self._set(token)
