"""The provider's transport: httpx's, with each stream's socket looked up once; a keep-alive
connection the server closed is still found closed before a request goes out on it."""

from __future__ import annotations

import asyncio

import httpcore
import httpx
import pytest

from grantkeeper.metrics import TimedTransport
from grantkeeper.outbound_http import SocketCachingBackend, provider_transport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_provider_transport_pools_on_the_socket_caching_backend() -> None:
    # A guard for an httpx upgrade: the pool is reached through private attributes.
    transport = provider_transport()
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, SocketCachingBackend)
    timed = TimedTransport()
    assert isinstance(timed._inner, httpx.AsyncHTTPTransport)
    assert isinstance(timed._inner._pool._network_backend, SocketCachingBackend)  # type: ignore[attr-defined]


async def test_a_keep_alive_connection_the_server_closed_is_not_reused() -> None:
    connections: list[int] = []
    closed = asyncio.Event()

    async def answer_once_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"ok": true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        # Like a server whose idle timeout ran out: it closes a connection the client keeps.
        await asyncio.sleep(0.05)
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        first = await client.get(f"http://127.0.0.1:{port}/")
        assert first.json() == {"ok": True}
        await closed.wait()
        await asyncio.sleep(0.05)
        closed.clear()
        second = await client.get(f"http://127.0.0.1:{port}/")
        assert second.json() == {"ok": True}
        await closed.wait()  # the server's side of the second connection is closed too
    assert len(connections) == 2
