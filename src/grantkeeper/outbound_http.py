"""The HTTP transport of outbound calls to the provider: httpx's, with one cost of httpcore
1.0 taken out.

Before every request httpcore's connection pool asks each idle keep-alive connection whether
the server closed it (``has_expired`` → ``get_extra_info("is_readable")``). Its AnyIO stream
answers by asking AnyIO for the raw socket, and AnyIO builds the stream's whole attribute table
for that, ``getpeername()`` included. With 32 refreshes in flight a py-spy profile of a bulk
refresh put ~21% of the keeper's CPU there (httpcore's own fix is pending upstream:
encode/httpcore#928, "reduce socket polling with expiry checks"). Here each stream looks its
socket up once and answers ``is_readable`` with one ``poll``; everything else is httpcore's.
"""

# httpcore's stream and backend interface takes timeouts as parameters; these only pass them on.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
import typing

import httpcore
import httpx

__all__ = ["provider_transport"]


def provider_transport(verify: ssl.SSLContext | bool = True) -> httpx.AsyncHTTPTransport:
    """httpx's transport, its connection pool on :class:`SocketCachingBackend` (when the pool
    is the plain httpcore pool this version of httpx makes: else it is left as it is)."""
    transport = httpx.AsyncHTTPTransport(verify=verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and backend is not None:
        pool._network_backend = SocketCachingBackend(backend)
    return transport


class SocketCachingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, its streams wrapped in :class:`_SocketCachingStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _SocketCachingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _SocketCachingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _SocketCachingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _SocketCachingStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._socket
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Whether reading would not block: on an idle keep-alive connection, only the server's
    close (or a closed socket) makes it so."""
    fd = sock.fileno()
    if fd == -1:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        ready, _, _ = select.select([fd], [], [], 0)
        return bool(ready)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
