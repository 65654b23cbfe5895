"""A real browser (Debian's Chromium, driven by Playwright) against ``grantkeeper serve
--emulator`` started as a subprocess, the way a developer runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium (never a downloaded build); missing: skipped, or a failure on CI.

    Per test, not per session: Playwright's sync API marks its event loop as running in this
    thread while it is started, and later tests' ``asyncio.run`` would refuse to start.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``grantkeeper serve --emulator`` on a free port; its URL once it answers.

    One per test process: starting it costs seconds, and each test's browser context starts
    with no cookies, so a test sees the page as a new visitor would.
    """
    tmp_path = tmp_path_factory.mktemp("dev-server")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # coverage.py's own variables, so `make coverage` measures the dev server too.
        **{k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")},
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grantkeeper",
            "serve",
            "--emulator",
            "--port",
            str(port),
            "--workers",
            "1",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    "grantkeeper serve --emulator exited: " + (tmp_path / "serve.log").read_text()
                )
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("grantkeeper serve --emulator did not start")
            time.sleep(0.1)  # waiting for a subprocess to start, not a test timing
        yield url
    finally:
        # Ctrl-C, as a developer stops it: uvicorn re-raises the signal after its shutdown, and
        # SIGINT (unlike SIGTERM) then ends the interpreter normally (atexit: coverage saves).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        context.close()
