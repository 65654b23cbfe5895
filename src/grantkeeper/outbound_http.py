"""The HTTP transport of outbound calls to the provider: httpx's, with one cost of httpcore
1.0 taken out.

Before every request httpcore's connection pool asks each idle keep-alive connection whether
the server closed it (``has_expired`` → ``get_extra_info("is_readable")``). Its AnyIO stream
answers by asking AnyIO for the raw socket, and AnyIO builds the stream's whole attribute table
for that, ``getpeername()`` included. With 32 refreshes in flight a py-spy profile of a bulk
refresh put ~21% of the keeper's CPU there (httpcore's own fix is pending upstream:
encode/httpcore#928, "reduce socket polling with expiry checks"). Here each stream looks its
socket up once and answers ``is_readable`` with one ``poll``.

The pool itself is :class:`ProviderPool`: httpcore 1.0's assignment pass, which runs twice per
request, walks every connection and, for each idle one, counts the whole pool again and polls
its socket, so its cost grows with the square of the connections a bulk refresh keeps open
(encode/httpcore#1035, fixed the same way in pydantic/httpx2#974 and #1075). Everything else is
httpcore's.
"""

# httpcore's stream and backend interface takes timeouts as parameters; these only pass them on.
# ruff: noqa: ASYNC109

from __future__ import annotations

import math
import select
import socket
import ssl
import time
import typing

import httpcore
import httpx
from httpcore._async.interfaces import AsyncConnectionInterface

__all__ = ["ProviderPool", "provider_transport"]

#: An ordered set of connections: the pool's order (oldest first), membership and removal at once.
_Connections = dict[AsyncConnectionInterface, None]

#: How often every idle connection is asked whether its keep-alive ran out or the server closed
#: it; in between, only the connection about to carry a request is asked.
CHECK_ALL_EVERY_SECONDS = 1.0


def provider_transport(verify: ssl.SSLContext | bool = True) -> httpx.AsyncHTTPTransport:
    """httpx's transport, its connection pool a :class:`ProviderPool` on
    :class:`SocketCachingBackend` (when the pool is the plain httpcore pool this version of
    httpx makes: else it is left as it is)."""
    transport = httpx.AsyncHTTPTransport(verify=verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    http2 = getattr(pool, "_http2", True)
    if type(pool) is httpcore.AsyncConnectionPool and backend is not None and not http2:
        # The same object with the same settings; only the assignment pass differs.
        pool.__class__ = ProviderPool
        pool._network_backend = SocketCachingBackend(backend)
    return transport


class ProviderPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool (HTTP/1.1, as the provider's transport uses it) with an
    assignment pass that costs one walk over the connections.

    What it keeps from httpcore: closed connections leave the pool, expired ones are closed,
    idle ones beyond ``max_keepalive_connections`` are closed (the oldest first), and a queued
    request takes the first available connection for its origin, else a new one (closing an
    idle one to make room at ``max_connections``). What differs:

    - idle connections are counted once per pass (httpcore recounts the pool for each one, and
      compares the *total* with the keep-alive limit, closing connections it could keep);
    - an idle connection is asked whether it expired (one ``poll`` of its socket) at most once a
      second, and always just before it carries a request;
    - an idle connection already handed to a queued request is neither handed to a second one
      (which would only fail with ``ConnectionNotAvailable`` and queue again) nor closed as
      surplus;
    - a connection that no request holds and that is not idle (made for a call cancelled before
      it connected) is let go instead of holding a slot of ``max_connections`` for good.
    """

    _all_checked_at: float = -math.inf

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        if kwargs.get("http2"):
            # An active HTTP/2 connection could take more requests; this pass hands a
            # connection to one request at a time.
            raise ValueError("ProviderPool speaks HTTP/1.1 only.")
        super().__init__(*args, **kwargs)

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        now = time.monotonic()
        check_all = now - self._all_checked_at >= CHECK_ALL_EVERY_SECONDS
        if check_all:
            self._all_checked_at = now
        spoken_for = {r.connection for r in self._requests if r.connection is not None}
        closing: list[AsyncConnectionInterface] = []
        kept: _Connections = {}
        spare: _Connections = {}
        for connection in self._connections:
            if connection.is_closed():
                continue
            idle = connection.is_idle()
            if not idle and connection not in spoken_for:
                # Made for a call that was cancelled before it used it: nobody will, and it
                # would hold one of max_connections for good (httpcore keeps it).
                closing.append(connection)
                continue
            if (check_all or not idle) and connection.has_expired():
                closing.append(connection)
                continue
            kept[connection] = None
            if idle and connection not in spoken_for:
                spare[connection] = None
        surplus = len(spare) - self._max_keepalive_connections
        for connection in list(spare)[: max(0, surplus)]:
            _drop(connection, kept, spare, closing)

        queued = [r for r in self._requests if r.is_queued()]
        if queued:
            available = {c: None for c in kept if c not in spoken_for and c.is_available()}
            for pool_request in queued:
                origin = pool_request.request.url.origin
                chosen = _take_available(available, origin, kept, spare, closing, check_all)
                if chosen is None:
                    if len(kept) >= self._max_connections:
                        if not spare:
                            continue  # it waits for a later pass
                        making_room = next(iter(spare))
                        available.pop(making_room, None)
                        _drop(making_room, kept, spare, closing)
                    chosen = self.create_connection(origin)
                    kept[chosen] = None
                pool_request.assign_to_connection(chosen)
        self._connections = list(kept)
        return closing

    async def _close_connections(self, closing: list[AsyncConnectionInterface]) -> None:
        # httpcore enters a cancellation shield (two AnyIO calls) even for an empty list.
        if closing:
            await super()._close_connections(closing)


def _drop(
    connection: AsyncConnectionInterface,
    kept: _Connections,
    spare: _Connections,
    closing: list[AsyncConnectionInterface],
) -> None:
    del kept[connection]
    spare.pop(connection, None)
    closing.append(connection)


def _take_available(
    available: _Connections,
    origin: httpcore.Origin,
    kept: _Connections,
    spare: _Connections,
    closing: list[AsyncConnectionInterface],
    all_checked: bool,
) -> AsyncConnectionInterface | None:
    """The first available connection for ``origin``, taken out of ``available`` and
    ``spare``; one found expired on the way is closed and the next one tried."""
    while True:
        connection = next((c for c in available if c.can_handle_request(origin)), None)
        if connection is None:
            return None
        del available[connection]
        if not all_checked and connection.is_idle() and connection.has_expired():
            _drop(connection, kept, spare, closing)
            continue
        spare.pop(connection, None)
        return connection


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
