"""The provider's transport: httpx's client on aiohttp's pool. Requests leave as httpx built
them, connections are kept alive and limited, and every failure is the httpx exception httpx's
own transport raises, on the right side of "sent"."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import os
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import trustme

from grantkeeper.metrics import TimedTransport
from grantkeeper.oauth.provider_calls import NEVER_SENT
from grantkeeper.outbound_http import ProviderTransport, as_httpx_error, provider_transport

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _start(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    scheme = "https" if tls else "http"
    return server, f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


class _KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open and counts them (and the most open at
    once); each answer comes after ``delay`` seconds. It keeps the last request's head and
    body."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests = 0
        self.head = b""
        self.body = b""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests += 1
                self.head = head
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.body = await reader.readexactly(length)
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        finally:
            self.open -= 1
            writer.close()


async def _serve(delay: float = 0.0) -> tuple[_KeepAliveServer, asyncio.Server, str]:
    counting = _KeepAliveServer(delay)
    server, url = await _start(counting.handle)
    return counting, server, url


def test_the_provider_transport_is_the_default_under_the_timed_transport() -> None:
    assert isinstance(provider_transport(), ProviderTransport)
    assert isinstance(TimedTransport()._inner, ProviderTransport)


async def test_calls_one_after_another_reuse_one_connection() -> None:
    counting, server, url = await _serve()
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        for _ in range(5):
            assert (await client.get(url)).text == "ok"
    assert counting.connections == 1


async def test_the_request_leaves_with_httpxs_headers_and_body_and_nothing_of_aiohttps() -> None:
    counting, server, url = await _serve()
    async with (
        server,
        httpx.AsyncClient(
            transport=provider_transport(), headers={"User-Agent": "grantkeeper"}
        ) as client,
    ):
        form = {"grant_type": "refresh_token", "refresh_token": "1//secret"}
        assert (await client.post(url, data=form)).text == "ok"
    head = counting.head.decode().lower()
    assert head.startswith("post / http/1.1\r\n")
    assert "user-agent: grantkeeper\r\n" in head
    assert "aiohttp" not in head
    assert "content-type: application/x-www-form-urlencoded\r\n" in head
    assert "accept-encoding: gzip" in head
    assert counting.body == b"grant_type=refresh_token&refresh_token=1%2F%2Fsecret"


async def test_an_encoded_answer_is_decoded_by_httpx() -> None:
    document = b'{"issuer": "https://accounts.google.com"}'
    packed = gzip.compress(document)

    server, url = await _start(
        _answering_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: " + str(len(packed)).encode() + b"\r\n\r\n" + packed
        )
    )
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        answer = await client.get(url)
    assert answer.json() == {"issuer": "https://accounts.google.com"}
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.http_version == "HTTP/1.1"
    assert answer.reason_phrase == "OK"


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

    server, url = await _start(answer_once_then_close)
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        assert (await client.get(url)).json() == {"ok": True}
        await closed.wait()
        await asyncio.sleep(0.05)
        closed.clear()
        assert (await client.get(url)).json() == {"ok": True}
        await closed.wait()
    assert len(connections) == 2


async def test_a_connection_past_its_keep_alive_expiry_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("grantkeeper.outbound_http.KEEPALIVE_EXPIRY_SECONDS", 0.05)
    counting, server, url = await _serve()
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        assert (await client.get(url)).text == "ok"
        await asyncio.sleep(0.2)
        assert (await client.get(url)).text == "ok"
    assert counting.connections == 2


async def test_calls_beyond_max_connections_wait_for_a_free_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("grantkeeper.outbound_http.MAX_CONNECTIONS", 3)
    counting, server, url = await _serve(delay=0.02)
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(20)))
        assert [a.text for a in answers] == ["ok"] * 20
    assert counting.most_open == 3
    assert counting.connections == 3  # queued calls waited for a connection, not a new one


async def test_a_queued_call_cancelled_leaves_the_transport_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("grantkeeper.outbound_http.MAX_CONNECTIONS", 1)
    counting, server, url = await _serve(delay=0.1)
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        calls = [asyncio.ensure_future(client.get(url)) for _ in range(4)]
        await asyncio.sleep(0.03)
        for queued in calls[1:3]:
            queued.cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert [getattr(d, "text", type(d).__name__) for d in done] == [
            "ok",
            "CancelledError",
            "CancelledError",
            "ok",
        ]
        assert (await client.get(url)).text == "ok"
    assert counting.connections == 1
    assert counting.requests == 3  # the cancelled calls never went out


# -- failures: the exception httpx's own transport raises, and whether the request left ------


async def _failure(url: str, **client: object) -> httpx.TransportError:
    async with httpx.AsyncClient(transport=provider_transport(), **client) as http:  # type: ignore[arg-type]
        with pytest.raises(httpx.TransportError) as raised:
            await http.post(url, data={"code": "4/secret-code"})
    assert "4/secret-code" not in str(raised.value)
    return raised.value


async def test_a_refused_connection_is_a_connect_error_never_sent() -> None:
    server, url = await _start(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    error = await _failure(url)
    assert isinstance(error, httpx.ConnectError)
    assert isinstance(error, NEVER_SENT)


async def test_no_free_connection_in_time_is_a_connect_timeout_never_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("grantkeeper.outbound_http.MAX_CONNECTIONS", 1)
    counting, server, url = await _serve(delay=0.5)
    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        busy = asyncio.ensure_future(client.get(url))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(url, timeout=httpx.Timeout(0.05))
        assert (await busy).text == "ok"
    assert counting.requests == 1


async def test_a_server_that_closes_without_answering_is_a_protocol_error_after_sending() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server, url = await _start(hang_up)
    async with server:
        error = await _failure(url)
    assert isinstance(error, httpx.RemoteProtocolError)
    assert not isinstance(error, NEVER_SENT)


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await done.wait()
        writer.close()
        await writer.wait_closed()

    server, url = await _start(silent)
    async with server:
        error = await _failure(url, timeout=httpx.Timeout(0.1))
        done.set()
        await asyncio.sleep(0.01)
    assert isinstance(error, httpx.ReadTimeout)
    assert not isinstance(error, NEVER_SENT)


def _answering_once(answer: bytes) -> Handler:
    """A server that reads a request's head, writes ``answer`` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    return handle


async def test_a_body_cut_short_is_a_read_error() -> None:
    server, url = await _start(
        _answering_once(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"access')
    )
    async with server:
        error = await _failure(url)
    assert isinstance(error, httpx.ReadError)
    assert not isinstance(error, NEVER_SENT)


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    server, url = await _start(_answering_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    async with server:
        error = await _failure(url)
    assert isinstance(error, httpx.RemoteProtocolError)


async def test_https_verifies_the_server_with_the_context_given() -> None:
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    counting = _KeepAliveServer()
    server, url = await _start(counting.handle, tls=served)
    async with server:
        # certifi's roots do not know this authority.
        error = await _failure(url)
        assert isinstance(error, httpx.ConnectError)
        assert "certificate" in str(error).lower()
        trusting = ssl.create_default_context()
        authority.configure_trust(trusting)
        async with httpx.AsyncClient(transport=provider_transport(verify=trusting)) as client:
            assert (await client.get(url)).text == "ok"
        async with httpx.AsyncClient(transport=provider_transport(verify=False)) as client:
            assert (await client.get(url)).text == "ok"


def test_an_exception_that_is_not_aiohttps_is_not_mapped() -> None:
    assert as_httpx_error(ValueError("not a transport failure")) is None


# -- event loops ---------------------------------------------------------------------------


def test_one_transport_serves_a_second_event_loop_after_the_first_ended() -> None:
    transport = provider_transport()
    client = httpx.AsyncClient(transport=transport)

    async def call() -> str:
        _, server, url = await _serve()
        async with server:
            answer = await client.get(url)
        return answer.text

    assert asyncio.run(call()) == "ok"
    # The first loop is gone with a keep-alive connection in the pool: the next loop gets a
    # session of its own, and the old connection is closed without warning (warnings are
    # errors in this suite).
    assert asyncio.run(call()) == "ok"
    asyncio.run(client.aclose())


async def test_a_closed_transport_refuses_calls() -> None:
    transport = provider_transport()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))


def _threaded_keep_alive_server() -> str:
    """A keep-alive server on a loop and thread of its own: like Google, it keeps a connection
    open after the caller's event loop has ended."""
    ready, port = threading.Event(), []

    def run() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass  # the client closed the connection
            finally:
                writer.close()

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return f"http://127.0.0.1:{port[0]}/"


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_a_loop_that_ends_closes_its_connections_and_the_next_loop_gets_its_own() -> None:
    url = _threaded_keep_alive_server()
    client = httpx.AsyncClient(transport=provider_transport())

    async def call() -> str:
        return (await client.get(url)).text

    before = _open_sockets()
    assert asyncio.run(call()) == "ok"
    # asyncio.run shut its loop down: the session and its keep-alive connection closed in it.
    assert _open_sockets() - before <= 1  # the server's end may still be closing
    assert asyncio.run(call()) == "ok"
    asyncio.run(client.aclose())
    gc.collect()  # an unclosed transport or socket would warn now (an error in this suite)
    assert _open_sockets() - before <= 2


async def test_a_streamed_body_goes_with_a_content_length_not_chunked() -> None:
    counting, server, url = await _serve()

    async def body() -> AsyncIterator[bytes]:
        yield b"grant_type=refresh_token"

    async with server, httpx.AsyncClient(transport=provider_transport()) as client:
        assert (await client.post(url, content=body())).text == "ok"
    head = counting.head.lower()
    assert b"transfer-encoding" not in head
    assert b"content-length: 24\r\n" in head
    assert counting.body == b"grant_type=refresh_token"


def test_each_split_of_a_timeout_is_kept() -> None:
    transport = provider_transport()

    def timeout_of(**parts: float | None) -> Any:
        request = httpx.Request("POST", "https://oauth2.googleapis.com/token")
        request.extensions["timeout"] = httpx.Timeout(**parts).as_dict()
        return transport._timeout(request)

    first = timeout_of(connect=1.0, read=10.0, write=10.0, pool=9.0)
    second = timeout_of(connect=9.0, read=10.0, write=10.0, pool=1.0)
    assert (first.sock_connect, first.connect, first.sock_read) == (1.0, 10.0, 10.0)
    assert (second.sock_connect, second.connect) == (9.0, 10.0)
    # No pool limit: connecting (name lookup included) is still bounded.
    unpooled = timeout_of(connect=3.0, read=None, write=None, pool=None)
    assert (unpooled.connect, unpooled.sock_read, unpooled.total) == (3.0, None, None)


# -- proxies from the environment -----------------------------------------------------------


async def test_a_proxy_from_the_environment_carries_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, proxy_server, proxy_url = await _serve()
    counting, server, url = await _serve()
    monkeypatch.setenv("HTTP_PROXY", proxy_url.replace("http://", "http://egress:s3cret@"))
    monkeypatch.delenv("http_proxy", raising=False)
    async with proxy_server, server:
        async with httpx.AsyncClient(transport=provider_transport()) as client:
            assert (await client.get(url)).text == "ok"
        head = proxy.head.decode()
        assert head.startswith(f"GET {url} HTTP/1.1\r\n")  # absolute form: to the proxy
        assert "proxy-authorization: Basic ZWdyZXNzOnMzY3JldA==\r\n" in head
        assert counting.requests == 0
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with httpx.AsyncClient(transport=provider_transport()) as client:
            assert (await client.get(url)).text == "ok"
        assert counting.requests == 1  # exempt: straight to the server
        assert proxy.requests == 1
