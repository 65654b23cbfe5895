"""``AsyncTokenClient``: the token API from asyncio code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from grantkeeper.client._credentials import RemoteCredentials
from grantkeeper.client._sync import _json, _json_or_none, client_headers
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

#: How long google-auth's (synchronous) refresh waits for the event loop's answer.
_CREDENTIALS_WAIT_SECONDS = 120.0


class AsyncTokenClient:
    """:class:`~grantkeeper.client.TokenClient` for asyncio code: the same methods, awaited::

    async with AsyncTokenClient("https://keeper.internal", service_key) as keeper:
        token = await keeper.access_token(sub)
    """

    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport, verify=verified_context()
        )
        self._headers = client_headers(service_key)
        self.retry = retry or RetryPolicy()

    async def access_token(self, sub: str, scopes: Iterable[str] | str | None = None) -> Token:
        """See :meth:`TokenClient.access_token`."""
        return Token.from_json(sub, await self._call(token_call(sub, scopes)))

    async def refresh(self, sub: str, rejected: str | None = None) -> Token:
        """See :meth:`TokenClient.refresh`."""
        return Token.from_json(sub, await self._call(refresh_call(sub, rejected)))

    async def disconnect(self, sub: str, forget: bool = False) -> Disconnected:
        """See :meth:`TokenClient.disconnect`."""
        return Disconnected.from_json(await self._call(disconnect_call(sub, forget)))

    async def credentials(
        self, sub: str, scopes: Iterable[str] | str | None = None
    ) -> RemoteCredentials:
        """Credentials for googleapiclient, which is synchronous: use them from a worker thread
        (``asyncio.to_thread``); their refresh runs on this event loop."""
        token = await self.access_token(sub, scopes)
        loop = asyncio.get_running_loop()

        def fetch(rejected: str | None) -> Token:
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                raise RuntimeError(
                    "These credentials were refreshed on the event loop's own thread; call "
                    "googleapiclient from a worker thread (asyncio.to_thread)."
                )
            future = asyncio.run_coroutine_threadsafe(self.refresh(sub, rejected), loop)
            return future.result(_CREDENTIALS_WAIT_SECONDS)

        return RemoteCredentials(fetch, token, scopes=sorted(token.scopes))

    async def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
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
                await anyio.sleep(wait)
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
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
