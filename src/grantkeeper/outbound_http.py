"""The HTTP transport of outbound calls to the provider: httpx's client API on aiohttp's
connection pool and C parser.

Every call to Google (code exchange, refresh, revocation, discovery, keys) goes through an
``httpx.AsyncClient``; the code above it speaks httpx (requests, responses, exceptions). Under
it, httpx's own transport (httpcore, h11 and AnyIO) cost the keeper 0.6 ms of CPU per POST at
32 calls in flight on the 2-core bench machine, against 0.3 ms for httpx on this transport
(and a bulk refresh's CPU per grant fell by 18%: ``bench/bench_bulk_refresh.py``). httpcore's
pool also grew expensive with many connections (encode/httpcore#1035) and kept a connection
made for a call cancelled before it connected for good; aiohttp's connector does neither.

What the transport keeps of httpx's behaviour:

- timeouts: ``connect`` bounds connecting and ``pool`` waiting for a free connection (aiohttp
  times both as one ``connect``), ``read`` each wait for response bytes; httpx's ``write`` has
  no aiohttp counterpart (a provider request is one small form);
- exceptions: aiohttp's are raised as the httpx exception a caller would get from httpx's own
  transport, so ``ConnectError``/``ConnectTimeout`` still mean "never sent" (the sign-in's
  retry rule depends on it) and anything after the request left is a read or protocol error;
- the request goes out with httpx's headers and body, unchanged (aiohttp adds none of its
  own), and the response body is handed back still encoded: httpx decodes it;
- keep-alive connections idle for more than 5 s are closed (httpx's ``keepalive_expiry``), at
  most 100 connections at once;
- TLS verification with the context given (by default certifi's roots, or ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR``: ``outbound_tls.verified_context``).

Proxies from the environment are httpx's business: ``httpx.AsyncClient`` mounts its own proxy
transports for them, and this transport only ever sees direct calls.

aiohttp's session belongs to one event loop: it is made on the first call, in the loop of that
call. A call from another loop (the first one having ended) gets a new session; the old one's
connections are closed without waiting, as their loop can no longer run.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from functools import cache
from typing import TYPE_CHECKING

import httpx

from grantkeeper.outbound_tls import verified_context

if TYPE_CHECKING:
    # Imported on first use (a transport made): aiohttp costs a CLI command ~0.1 s to import.
    import aiohttp

__all__ = ["KEEPALIVE_EXPIRY_SECONDS", "MAX_CONNECTIONS", "ProviderTransport", "provider_transport"]

#: httpx's defaults, kept: idle keep-alive connections close after this long.
KEEPALIVE_EXPIRY_SECONDS = 5.0
#: httpx's default ``max_connections``: beyond it, calls wait for a free connection.
MAX_CONNECTIONS = 100

#: Headers aiohttp would add when absent; httpx has already set the ones it sends.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@cache
def _exceptions() -> tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]:
    """aiohttp's exceptions, most specific first, and what httpx's own transport raises
    instead. Which side of "sent" a failure falls on matters: only a connect failure or a
    connect (or pool) timeout proves the provider never saw the request."""
    import aiohttp

    return (
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
        (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
        (aiohttp.ClientConnectorError, httpx.ConnectError),
        (aiohttp.ServerFingerprintMismatch, httpx.ConnectError),
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.ReadError),
        (aiohttp.ClientConnectionError, httpx.ReadError),
        (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
        (aiohttp.ClientError, httpx.TransportError),
    )


def provider_transport(verify: ssl.SSLContext | bool = True) -> ProviderTransport:
    """The transport of calls to the provider. ``verify``: a context to verify the server
    with, ``True`` for the default one (``outbound_tls.verified_context``), ``False`` for no
    verification (a local emulator over HTTPS with a throwaway certificate)."""
    if verify is True:
        return ProviderTransport(verified_context())
    return ProviderTransport(verify)


def as_httpx_error(error: BaseException) -> httpx.TransportError | None:
    """The httpx exception httpx's own transport would raise for aiohttp's ``error``; ``None``
    for an exception that is not aiohttp's (it propagates as it is)."""
    for aiohttp_type, httpx_type in _exceptions():
        if isinstance(error, aiohttp_type):
            # aiohttp's message names the host and the OS error, never a request body.
            return httpx_type(str(error) or type(error).__name__)
    return None


class ProviderTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request with one aiohttp session (HTTP/1.1).

    Args:
        ssl_context: the context to verify HTTPS servers with, or ``False`` not to verify.
    """

    def __init__(self, ssl_context: ssl.SSLContext | bool) -> None:
        import aiohttp
        from yarl import URL

        self._client_error: type[aiohttp.ClientError] = aiohttp.ClientError
        self._url = URL
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._closed = False

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        session = self._session
        if session is not None and self._loop is loop:
            return session
        if session is not None:
            _abandon(session)
        import aiohttp

        connector = aiohttp.TCPConnector(
            ssl=self._ssl,
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            skip_auto_headers=_NO_AUTO_HEADERS,
            auto_decompress=False,  # httpx decodes Content-Encoding
            timeout=aiohttp.ClientTimeout(total=None),
            requote_redirect_url=False,
        )
        self._session, self._loop = session, loop
        return session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        timeouts = request.extensions.get("timeout", {})
        connect, pool, read = timeouts.get("connect"), timeouts.get("pool"), timeouts.get("read")
        # aiohttp's ``connect`` covers both the wait for a free connection and connecting.
        waiting = None if connect is None or pool is None else connect + pool
        key = (waiting, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=None, connect=waiting, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("The provider transport was closed; a new one is needed.")
        session = self._session_for(asyncio.get_running_loop())
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                self._url(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx follows redirects, when asked to
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except self._client_error as error:
            raise _mapped(error) from error
        except TimeoutError as error:  # a timeout aiohttp did not wrap
            raise httpx.ReadTimeout(str(error) or "The provider did not answer in time.") from error
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseBody(response, self._client_error),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is None:
            return
        if self._loop is asyncio.get_running_loop():
            await session.close()
        else:
            _abandon(session)


class _ResponseBody(httpx.AsyncByteStream):
    """The body of an aiohttp response, read in one piece (provider answers are small JSON
    documents) when httpx reads the response."""

    def __init__(
        self, response: aiohttp.ClientResponse, client_error: type[aiohttp.ClientError]
    ) -> None:
        self._response = response
        self._client_error = client_error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            body = await self._response.read()
        except self._client_error as error:
            raise _mapped(error) from error
        except TimeoutError as error:
            raise httpx.ReadTimeout(str(error) or "The provider did not answer in time.") from error
        if body:
            yield body

    async def aclose(self) -> None:
        # Back to the pool when the body was read in full; closed otherwise.
        self._response.release()


def _mapped(error: BaseException) -> httpx.TransportError:
    mapped = as_httpx_error(error)
    assert mapped is not None  # aiohttp.ClientError is the last row of the table
    return mapped


def _abandon(session: aiohttp.ClientSession) -> None:
    """Close a session whose event loop has ended: its connections' sockets are closed now,
    without the (never-coming) loop turn ``close()`` awaits."""
    connector = session.connector
    if connector is not None and not connector.closed:
        # ``_close`` closes every transport at once (the awaitable part of ``close`` only
        # waits for them) and marks the session closed, so it does not warn when collected.
        connector._close()
