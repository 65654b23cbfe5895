"""Serving the emulator: in a background thread for tests (``run_emulator``) or in the foreground
for ``grantkeeper emulator``."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn

from grantkeeper.emulator.app import create_app, emulator_state
from grantkeeper.emulator.client import EmulatorControl
from grantkeeper.emulator.config import EmulatorConfig, default_data_dir
from grantkeeper.emulator.state import EmulatorState
from grantkeeper.emulator.tls import server_certificate
from grantkeeper.logsafety import redact_access_log

log = logging.getLogger("grantkeeper.emulator")

#: How long the emulator keeps an idle keep-alive connection open. uvicorn's default, 5 s, is
#: the idle expiry of httpx's and aiohttp's pools too, so a client reusing a connection after
#: about 5 s raced the emulator closing it, and a code exchange sent on a connection closed
#: under it failed (it is not retried: the code may have been redeemed). A server that keeps
#: idle connections longer than its clients (nginx's default is 75 s) lets the clients close
#: them first, and the race goes.
KEEP_ALIVE_SECONDS = 75


@dataclass
class EmulatorHandle:
    """A running emulator: where it is, its state, and a client for its control API."""

    base_url: str
    state: EmulatorState
    control: EmulatorControl
    ca_path: Path | None = None
    """The CA certificate to trust when the emulator serves HTTPS (else ``None``)."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSL context trusting the emulator's CA (``None`` for plain HTTP)."""
        return ssl.create_default_context(cafile=str(self.ca_path)) if self.ca_path else None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and without
    # it every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def prepare(
    config: EmulatorConfig | None, sock: socket.socket
) -> tuple[EmulatorConfig, dict[str, Any]]:
    """The configuration to build the app with (its base URL, its certificate when it serves
    HTTPS) and the matching uvicorn TLS options."""
    config = config or EmulatorConfig()
    if not config.https:
        return replace(config, base_url=config.base_url or url_of(sock)), {}
    certificate = server_certificate(config.data_dir or default_data_dir())
    config = replace(
        config, base_url=config.base_url or url_of(sock, "https"), certificate=certificate
    )
    tls = {"ssl_certfile": str(certificate.cert_path), "ssl_keyfile": str(certificate.key_path)}
    return config, tls


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[EmulatorHandle]:
    """Serve a fresh emulator with uvicorn on 127.0.0.1 and a free port, in a daemon thread."""
    sock = bind("127.0.0.1", 0)
    try:
        config, tls = prepare(config, sock)
        app = create_app(config)
    except BaseException:
        sock.close()
        raise
    # Where it really listens; config.base_url may say otherwise (a test of unreachable URLs).
    base_url = url_of(sock, "https" if config.https else "http")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            **tls,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="grantkeeper-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.005)  # a startup wait, not a test timing
    ca_path = config.certificate.ca_path if config.certificate else None
    control = EmulatorControl(base_url, ca_path=ca_path)
    try:
        yield EmulatorHandle(
            base_url=base_url, state=emulator_state(app), control=control, ca_path=ca_path
        )
    finally:
        control.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def control_api_exposure(host: str) -> str | None:
    """A warning when the emulator listens beyond loopback: its control API (``/emulator/``)
    has no authentication, so anyone who can reach it can mint codes and tokens for any test
    user, change the clock and read statistics."""
    if host in ("localhost", ""):
        return None if host == "localhost" else _OPEN
    try:
        if ipaddress.ip_address(host.split("%")[0]).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    return _OPEN


_OPEN = (
    "the emulator listens beyond loopback and its control API (/emulator/) has no "
    "authentication: anyone who can reach this port can mint codes and tokens for any test "
    "user. Bind 127.0.0.1 unless the network is yours alone."
)


def serve(
    host: str,
    port: int,
    config: EmulatorConfig | None = None,
    announce: Callable[[str], None] = lambda line: None,
) -> None:
    """Serve in the foreground until interrupted (``grantkeeper emulator``); ``announce`` gets
    the base URL once the port is bound (port 0 picks a free one), then, with HTTPS, where the
    CA certificate to trust is."""
    sock = bind(host, port)
    # Listening before the URL is printed: a client that reads it and connects at once waits in
    # the backlog until uvicorn accepts, instead of being refused.
    sock.listen(2048)
    try:
        config, tls = prepare(config, sock)
        app = create_app(config)
    except BaseException:
        sock.close()
        raise
    assert config.base_url is not None
    redact_access_log()
    announce(config.base_url)
    warning = control_api_exposure(host)
    if warning:
        log.warning("%s", warning)
        announce(f"warning: {warning}")
    if config.certificate is not None:
        announce(f"CA certificate: {config.certificate.ca_path}")
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="info", lifespan="off", timeout_keep_alive=KEEP_ALIVE_SECONDS, **tls
        )
    )
    server.run(sockets=[sock])
