"""The provider's transport: httpx's, with each stream's socket looked up once; a keep-alive
connection the server closed is still found closed before a request goes out on it."""

from __future__ import annotations

import asyncio

import httpcore
import httpx
import pytest
from httpcore._async.connection_pool import AsyncPoolRequest

from grantkeeper.metrics import TimedTransport
from grantkeeper.outbound_http import ProviderPool, SocketCachingBackend, provider_transport

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_provider_transport_pools_on_the_socket_caching_backend() -> None:
    # A guard for an httpx upgrade: the pool is reached through private attributes.
    transport = provider_transport()
    pool = transport._pool
    assert type(pool) is ProviderPool
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


class _InFlight:
    """Requests being answered at once, across servers."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0


class _KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open and counts them (and the most open at
    once); each answer comes after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, in_flight: _InFlight | None = None) -> None:
        self.delay = delay
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.in_flight = in_flight or _InFlight()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                self.in_flight.now += 1
                self.in_flight.most = max(self.in_flight.most, self.in_flight.now)
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                self.in_flight.now -= 1
        finally:
            self.open -= 1
            writer.close()


async def _serve(
    delay: float = 0.0, in_flight: _InFlight | None = None
) -> tuple[_KeepAliveServer, asyncio.Server, str]:
    counting = _KeepAliveServer(delay, in_flight)
    server = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    return counting, server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_the_provider_pool_reuses_one_connection_for_calls_one_after_another() -> None:
    counting, server, url = await _serve()
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        for _ in range(5):
            assert (await client.get(url)).text == "ok"
    assert counting.connections == 1


async def test_the_provider_pool_queues_beyond_max_connections_and_keeps_the_keep_alive_limit() -> (
    None
):
    counting, server, url = await _serve(delay=0.02)
    async with server, ProviderPool(max_connections=3, max_keepalive_connections=1) as pool:
        answers = await asyncio.gather(*(pool.request("GET", url) for _ in range(20)))
        assert [a.status for a in answers] == [200] * 20
        assert counting.most_open == 3
        assert counting.connections == 3  # queued calls waited for a connection, not a new one
        # Once all are idle, only max_keepalive_connections of them stay open.
        assert len(pool.connections) == 1
        assert (await pool.request("GET", url)).status == 200
        assert counting.connections == 3


async def test_a_connection_past_its_keep_alive_expiry_is_not_reused() -> None:
    counting, server, url = await _serve()
    async with server, ProviderPool(keepalive_expiry=0.05) as pool:
        assert (await pool.request("GET", url)).status == 200
        await asyncio.sleep(0.1)
        # Within a second of the pass that checked every connection: only the chosen one is
        # checked, and it is found expired.
        assert (await pool.request("GET", url)).status == 200
    assert counting.connections == 2


async def test_idle_connections_found_expired_are_closed_by_a_later_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("grantkeeper.outbound_http.CHECK_ALL_EVERY_SECONDS", 0.0)
    counting, server, url = await _serve(delay=0.02)
    async with server, ProviderPool(keepalive_expiry=0.05) as pool:
        await asyncio.gather(*(pool.request("GET", url) for _ in range(3)))
        assert len(pool.connections) == 3
        await asyncio.sleep(0.1)
        assert (await pool.request("GET", url)).status == 200
        assert len(pool.connections) == 1
        await asyncio.sleep(0.05)
        assert counting.open == 1  # the server saw the two expired ones closed


async def test_calls_to_two_origins_share_max_connections_closing_idle_ones_to_make_room() -> None:
    in_flight = _InFlight()
    first, first_server, first_url = await _serve(0.01, in_flight)
    second, second_server, second_url = await _serve(0.01, in_flight)
    async with first_server, second_server, ProviderPool(max_connections=2) as pool:
        urls = [first_url, second_url, first_url, first_url, second_url] * 6
        answers = await asyncio.gather(*(pool.request("GET", url) for url in urls))
        assert [a.status for a in answers] == [200] * len(urls)
        assert in_flight.most == 2  # never more requests at once than max_connections
        assert len(pool.connections) <= 2
        assert first.connections > 1  # rooms were made, both ways
        assert second.connections > 1
        await asyncio.sleep(0.05)
        assert first.open + second.open == len(pool.connections)  # none left outside the pool


async def test_a_queued_call_cancelled_leaves_the_pool_serving() -> None:
    counting, server, url = await _serve(delay=0.1)
    async with server, ProviderPool(max_connections=1) as pool:
        calls = [asyncio.ensure_future(pool.request("GET", url)) for _ in range(4)]
        await asyncio.sleep(0.03)
        for queued in calls[1:3]:
            queued.cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert [getattr(d, "status", type(d).__name__) for d in done] == [
            200,
            "CancelledError",
            "CancelledError",
            200,
        ]
        assert (await pool.request("GET", url)).status == 200
    assert counting.connections == 1


def test_the_provider_pool_refuses_http2() -> None:
    with pytest.raises(ValueError, match=r"HTTP/1\.1 only"):
        ProviderPool(http2=True)


class _FakeConnection:
    """What the assignment pass asks of a connection."""

    def __init__(self, origin: httpcore.Origin, *, idle: bool) -> None:
        self.origin = origin
        self.idle = idle

    def is_closed(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return self.idle

    def has_expired(self) -> bool:
        return False

    def is_available(self) -> bool:
        return self.idle

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin


async def test_a_connection_closed_to_make_room_is_not_handed_to_a_later_call_of_its_origin() -> (
    None
):
    pool = ProviderPool(max_connections=1)
    first = httpcore.Request("GET", "http://first.example/")
    second = httpcore.Request("GET", "http://second.example/")
    idle_first = _FakeConnection(first.url.origin, idle=True)
    pool._connections = [idle_first]  # type: ignore[list-item]
    to_second, to_first = AsyncPoolRequest(second), AsyncPoolRequest(first)
    pool._requests = [to_second, to_first]

    closing = pool._assign_requests_to_connections()

    assert closing == [idle_first]  # closed so that the call to the other origin may connect
    assert to_second.connection is not None
    assert to_second.connection is not idle_first
    assert pool._connections == [to_second.connection]
    assert to_first.is_queued()  # it waits for a connection, not for the one being closed


async def test_a_connection_made_for_a_call_cancelled_before_it_used_it_frees_its_slot() -> None:
    # A call handed a new connection by another call's pass, then cancelled before it woke to
    # connect: the connection is neither idle nor closed, and nobody holds it. httpcore 1.0.9
    # keeps it for good; at max_connections every later call would wait forever.
    pool = ProviderPool(max_connections=1)
    request = httpcore.Request("GET", "http://first.example/")
    orphan = _FakeConnection(request.url.origin, idle=False)
    pool._connections = [orphan]  # type: ignore[list-item]
    waiting = AsyncPoolRequest(request)
    pool._requests = [waiting]

    closing = pool._assign_requests_to_connections()

    assert closing == [orphan]
    assert waiting.connection is not None
    assert waiting.connection is not orphan
    assert pool._connections == [waiting.connection]
