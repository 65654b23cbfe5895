"""``TokenClient``: the token API from synchronous code (scripts, Celery tasks, threads)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

from grantkeeper._version import __version__
from grantkeeper.client._credentials import RemoteCredentials
from grantkeeper.client._wire import (
    Call,
    Disconnected,
    RetryPolicy,
    Token,
    disconnect_call,
    error_from_problem,
    refresh_call,
    retry_after_seconds,
    token_call,
)
from grantkeeper.errors import GrantkeeperError, KeeperUnreachable
from grantkeeper.outbound_tls import verified_context


def client_headers(service_key: str) -> dict[str, str]:
    if not service_key:
        from grantkeeper.errors import ConfigurationError

        raise ConfigurationError("The service key is empty.")
    return {
        "Authorization": f"Bearer {service_key}",
        "User-Agent": f"grantkeeper-client/{__version__}",
        "Accept": "application/json, application/problem+json",
    }


class TokenClient:
    """The keeper's token API over HTTP, for a worker that holds no database, client secret or
    key ring. Safe to share between threads (one connection pool)::

        with TokenClient("https://keeper.internal", service_key) as keeper:
            drive = build("drive", "v3", credentials=keeper.credentials(sub))

    Failures raise the library's own exceptions (:class:`~grantkeeper.GrantRevoked`,
    :class:`~grantkeeper.MissingScopes`, :class:`~grantkeeper.ProviderUnavailable`, …) with
    their ``code``, ``advice`` and ``retryable``; retryable ones are retried first, honouring
    ``Retry-After`` (see :class:`RetryPolicy`).

    Args:
        base_url: where the keeper's HTTP API is.
        service_key: a key from the keeper's ``GRANTKEEPER_SERVICE_API_KEYS``.
        timeout: seconds per request (a refresh at Google happens inside it).
        retry: when to retry.
        transport: an httpx transport (tests mount an app); or pass ``http``, a client of yours.
    """

    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=base_url, timeout=timeout, transport=transport, verify=verified_context()
        )
        self._headers = client_headers(service_key)
        self.retry = retry or RetryPolicy()

    def access_token(self, sub: str, scopes: Iterable[str] | str | None = None) -> Token:
        """A token valid for at least the keeper's refresh margin, carrying ``scopes``."""
        return Token.from_json(sub, self._call(token_call(sub, scopes)))

    def refresh(self, sub: str, rejected: str | None = None) -> Token:
        """A new token because Google refused ``rejected`` (a 401). The keeper refreshes unless
        it already holds a newer token; without ``rejected`` it replaces the stored token."""
        return Token.from_json(sub, self._call(refresh_call(sub, rejected)))

    def disconnect(self, sub: str, forget: bool = False) -> Disconnected:
        """Revoke the user's grant at Google and erase the tokens (``forget``: the profile too)."""
        return Disconnected.from_json(self._call(disconnect_call(sub, forget)))

    def credentials(self, sub: str, scopes: Iterable[str] | str | None = None) -> RemoteCredentials:
        """google-auth credentials for google-api-python-client; their refresh asks the keeper
        (a forced refresh naming the refused token, on googleapiclient's 401)."""
        token = self.access_token(sub, scopes)
        return RemoteCredentials(
            lambda rejected: self.refresh(sub, rejected), token, scopes=sorted(token.scopes)
        )

    def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    headers=self._headers,
                )
            except httpx.TransportError as failure:
                error: GrantkeeperError = KeeperUnreachable(
                    f"The keeper could not be reached ({type(failure).__name__})."
                )
                wait = self.retry.wait(error, attempt)
                if wait is None:
                    raise error from None
                time.sleep(wait)
                continue
            if response.is_success:
                return _json(response)
            error = error_from_problem(
                response.status_code,
                _json_or_none(response),
                retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC)),
            )
            wait = self.retry.wait(error, attempt)
            if wait is None:
                raise error
            time.sleep(wait)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise KeeperUnreachable(
            f"The keeper answered {response.status_code} with a body that is not JSON."
        ) from None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
