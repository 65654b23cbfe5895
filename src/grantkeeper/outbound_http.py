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

- a proxy from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, read when the
  transport is made), as requests (under google-auth) honours it. httpx itself ignores them
  once a transport is given, so before this transport grantkeeper's calls to Google did too.

aiohttp's session belongs to one event loop: it is made on the first call, in the loop of that
call, and closed by ``aclose()`` or, when the loop shuts down first (``asyncio.run``, anyio,
uvicorn), by the loop's ``shutdown_asyncgens``. A call from a later loop gets a new session.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import httpx

from grantkeeper.outbound_tls import verified_context

log = logging.getLogger("grantkeeper.oauth")

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
        # Read once, as requests and httpx do per client: HTTPS_PROXY, HTTP_PROXY, NO_PROXY.
        self._env_proxies = urllib.request.getproxies_environment()
        self._proxies: dict[tuple[str, str], tuple[URL, dict[str, str] | None] | None] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[
            tuple[float | None, float | None, float | None], aiohttp.ClientTimeout
        ] = {}
        self._closed = False

    async def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        session = self._session
        if session is not None and self._loop is loop:
            return session
        self._let_go()
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
        closer = _closed_with_its_loop(session)
        await closer.asend(None)  # now tracked by this loop's async-generator hooks
        self._session, self._closer, self._loop = session, closer, loop
        return session

    def _let_go(self) -> None:
        """Close the session of another event loop (one that ended, or runs elsewhere)."""
        closer, loop = self._closer, self._loop
        self._session = self._closer = self._loop = None
        if closer is None or loop is None:
            return
        if loop.is_running():
            # Its loop runs in another thread: the session is closed there.
            asyncio.run_coroutine_threadsafe(closer.aclose(), loop)
            return
        # Its loop ended. asyncio.run, anyio and uvicorn close the session as their loop shuts
        # down (shutdown_asyncgens); a loop closed without that left it open: closing it now
        # finishes at once (there is nothing left to wait for), though the sockets of a loop
        # that is already closed are only let go when collected.
        closing = closer.aclose()
        try:
            closing.send(None)
        except StopIteration:
            return
        except Exception:  # a loop that cannot run anything any more
            log.debug("the provider session of an ended event loop could not be closed")
        closing.close()

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        timeouts = request.extensions.get("timeout", {})
        connect, pool, read = timeouts.get("connect"), timeouts.get("pool"), timeouts.get("read")
        key = (connect, pool, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            # aiohttp's ``connect`` bounds the wait for a free connection, the name lookup and
            # connecting together; ``sock_connect`` connecting alone. Without a pool limit the
            # connect limit still bounds the name lookup.
            waiting = None if connect is None else connect + (pool or 0.0)
            timeout = aiohttp.ClientTimeout(
                total=None, connect=waiting, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    def _proxy_for(self, url: httpx.URL) -> dict[str, Any]:
        """The proxy the environment names for ``url`` (its scheme's ``*_PROXY`` unless
        ``NO_PROXY`` exempts the host), as aiohttp's arguments; per origin, looked up once.
        (aiohttp's own ``trust_env`` looks it up on a thread for every request, and reads
        ``~/.netrc`` for credentials to send.)"""
        if not self._env_proxies:
            return {}
        key = (url.scheme, url.host)
        try:
            found = self._proxies[key]
        except KeyError:
            found = None
            named = self._env_proxies.get(url.scheme)
            if named and not _bypassed(url.host, self._env_proxies):
                proxy = self._url(named if "://" in named else f"http://{named}")
                headers = None
                if proxy.user is not None:
                    import aiohttp

                    basic = aiohttp.encode_basic_auth(proxy.user, proxy.password or "")
                    headers = {"Proxy-Authorization": basic}
                found = (proxy.with_user(None), headers)
            if len(self._proxies) < 256:
                self._proxies[key] = found
        if found is None:
            return {}
        through, credentials = found
        if credentials is not None and url.scheme == "http":
            # aiohttp sends proxy_headers only on a CONNECT (https); a plain http request
            # goes to the proxy itself, so the credentials go with it.
            return {"proxy": through, "headers_too": credentials}
        return {"proxy": through, "proxy_headers": credentials}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("The provider transport was closed; a new one is needed.")
        session = await self._session_for(asyncio.get_running_loop())
        body = await request.aread()
        headers = request.headers
        if "transfer-encoding" in headers:
            # A streamed body, read whole above: it goes with a Content-Length, not chunked.
            headers = headers.copy()
            del headers["transfer-encoding"]
        proxy = self._proxy_for(request.url)
        if "headers_too" in proxy:
            headers = headers.copy()
            headers.update(proxy.pop("headers_too"))
        try:
            response = await session.request(
                request.method,
                self._url(str(request.url), encoded=True),
                headers=headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx follows redirects, when asked to
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
                **proxy,
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
        closer = self._closer
        if closer is not None and self._loop is asyncio.get_running_loop():
            self._session = self._closer = self._loop = None
            await closer.aclose()
        else:
            self._let_go()


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


def _bypassed(host: str, proxies: dict[str, str]) -> bool:
    """Whether ``NO_PROXY`` (in ``proxies``, as read with them) exempts ``host``: urllib's own
    rule, which requests follows too (typeshed does not list it)."""
    rule: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return rule(host, proxies)


def _mapped(error: BaseException) -> httpx.TransportError:
    mapped = as_httpx_error(error)
    assert mapped is not None  # aiohttp.ClientError is the last row of the table
    return mapped


async def _closed_with_its_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Waits, suspended, for the session's end: ``aclose()`` (the transport closed) or its
    event loop shutting down (``loop.shutdown_asyncgens()``, which ``asyncio.run`` and the
    servers call) runs the ``finally`` in that loop, so the connections close there."""
    try:
        yield
    finally:
        await session.close()
