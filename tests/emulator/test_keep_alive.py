"""The emulator keeps idle keep-alive connections open longer than its clients' pools do."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from grantkeeper.emulator import EmulatorHandle
from grantkeeper.emulator.server import KEEP_ALIVE_SECONDS


def _get(sock: socket.socket, host: str) -> bytes:
    sock.sendall(f"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, "the emulator closed the connection"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0]


def test_a_connection_idle_past_the_clients_expiry_still_serves(emulator: EmulatorHandle) -> None:
    # httpx's and aiohttp's pools drop a connection idle for 5 s: the emulator must not close it
    # first (uvicorn's default is those same 5 s, and the two raced).
    assert KEEP_ALIVE_SECONDS > 5
    url = urlsplit(emulator.base_url)
    assert url.hostname is not None
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        assert _get(sock, url.netloc) == b"HTTP/1.1 200 OK"
        time.sleep(5.5)  # past uvicorn's default keep-alive, the one this replaces
        assert _get(sock, url.netloc) == b"HTTP/1.1 200 OK"
