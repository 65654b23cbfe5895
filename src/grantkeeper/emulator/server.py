"""Serving the emulator: in a background thread for tests (``run_emulator``) or in the foreground
for ``grantkeeper emulator``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import uvicorn

from grantkeeper.emulator.app import create_app, emulator_state
from grantkeeper.emulator.client import EmulatorControl
from grantkeeper.emulator.config import EmulatorConfig
from grantkeeper.emulator.state import EmulatorState
from grantkeeper.logsafety import redact_access_log


@dataclass
class EmulatorHandle:
    """A running emulator: where it is, its state, and a client for its control API."""

    base_url: str
    state: EmulatorState
    control: EmulatorControl


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and without
    # it every small answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[EmulatorHandle]:
    """Serve a fresh emulator with uvicorn on 127.0.0.1 and a free port, in a daemon thread."""
    sock = bind("127.0.0.1", 0)
    base_url = url_of(sock)
    config = config or EmulatorConfig()
    app = create_app(replace(config, base_url=config.base_url or base_url))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
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
    control = EmulatorControl(base_url)
    try:
        yield EmulatorHandle(base_url=base_url, state=emulator_state(app), control=control)
    finally:
        control.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    host: str,
    port: int,
    config: EmulatorConfig | None = None,
    announce: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve in the foreground until interrupted (``grantkeeper emulator``); ``announce`` gets
    the base URL once the port is bound (port 0 picks a free one)."""
    sock = bind(host, port)
    base_url = url_of(sock)
    config = config or EmulatorConfig()
    app = create_app(replace(config, base_url=config.base_url or base_url))
    redact_access_log()
    announce(base_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="off"))
    server.run(sockets=[sock])
