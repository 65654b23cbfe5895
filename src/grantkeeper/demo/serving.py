"""Serve an ASGI app with uvicorn on 127.0.0.1 and a free port, in a background thread.

The demo runs the keeper's real HTTP API this way, beside the emulator, so the "app" talks to
its backend over HTTP exactly as Google's guide describes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from grantkeeper.emulator.server import bind, url_of

_START_SECONDS = 20.0


@contextmanager
def serve_in_thread(app: Any, *, name: str = "grantkeeper-keeper") -> Iterator[str]:
    """Serve ``app`` (lifespan on: the app opens and closes what it owns) and yield its URL."""
    sock = bind("127.0.0.1", 0)
    # log_config=None: uvicorn's own records go to the root logger (the demo's log file).
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        log_config=None,
        # The app's own middleware applies GRANTKEEPER_TRUSTED_PROXIES; uvicorn's must not.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} did not start (see the log)")
        time.sleep(0.005)  # waiting for start-up, not a test timing
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
