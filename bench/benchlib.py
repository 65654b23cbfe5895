"""What the bench scripts share: an emulator in its own process, PostgreSQL schemas, the CPU
time of a process tree, a bounded load of HTTP requests, and percentiles.

Every server here listens on 127.0.0.1 only; every load is bounded in count.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

POSTGRES = os.environ.get("GRANTKEEPER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent


def grantkeeper_command() -> list[str]:
    found = shutil.which("grantkeeper", path=str(BIN))
    return [found] if found else [sys.executable, "-m", "grantkeeper"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Emulator:
    """``grantkeeper emulator`` in its own process, so its CPU is nobody's server's."""

    process: subprocess.Popen[bytes]
    base_url: str

    @classmethod
    def start(cls, workdir: Path) -> Emulator:
        port = free_port()
        log = (workdir / "emulator.log").open("wb")
        process = subprocess.Popen(
            [*grantkeeper_command(), "emulator", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(base_url + "/.well-known/openid-configuration", process)
        # Access logs cost the emulator CPU on every call; nobody reads them here.
        return cls(process, base_url)

    def stop(self) -> None:
        stop(self.process)


def tree_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and each of its descendants alive now, by pid."""
    root = psutil.Process(pid)
    found: dict[int, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[proc.pid] = times.user + times.system
    return found


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass
class Phase:
    """One measured phase on one server: CPU of its process tree, latencies as clients saw."""

    name: str
    requests: int
    cpu_seconds: float
    wall_seconds: float
    latencies: list[float]
    failures: int
    failure_samples: list[str] = field(default_factory=list)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / self.requests

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    @classmethod
    def combined(cls, name: str, parts: Sequence[Phase]) -> Phase:
        """The slices of one phase on one server as one phase."""
        return cls(
            name,
            sum(p.requests for p in parts),
            sum(p.cpu_seconds for p in parts),
            sum(p.wall_seconds for p in parts),
            [latency for p in parts for latency in p.latencies],
            sum(p.failures for p in parts),
            [sample for p in parts for sample in p.failure_samples][:3],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cpu_ms_per_request": round(self.cpu_ms, 3),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "wall_s": round(self.wall_seconds, 2),
            "failures": self.failures,
        }


async def _drive(
    base_url: str, calls: Sequence[Call], concurrency: int
) -> tuple[list[float], int, list[str]]:
    latencies: list[float] = []
    failures = 0
    samples: list[str] = []
    queue = iter(calls)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal failures
            for call in queue:
                began = time.perf_counter()
                what = ""
                try:
                    response = await client.request(
                        call.method, call.path, headers=call.headers, json=call.json
                    )
                    ok = response.status_code == 200
                    if not ok:
                        what = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as error:
                    ok = False
                    what = type(error).__name__
                latencies.append(time.perf_counter() - began)
                if not ok:
                    failures += 1
                    if len(samples) < 3:
                        samples.append(f"{call.method} {call.path.split('/')[1]}: {what}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures, samples


def measure(
    name: str, base_url: str, server_pid: int, calls: Sequence[Call], concurrency: int
) -> Phase:
    """Send ``calls`` from ``concurrency`` clients on keep-alive connections of their own; the
    server's CPU over exactly that span."""
    cpu_before = tree_cpu(server_pid)
    began = time.perf_counter()
    latencies, failures, samples = asyncio.run(_drive(base_url, calls, concurrency))
    wall = time.perf_counter() - began
    cpu_after = tree_cpu(server_pid)
    gone = sorted(set(cpu_before) - set(cpu_after))
    if gone:
        # Its CPU left the sum with it (a worker killed by its supervisor's timeout, say): the
        # figure would be too low, so the phase counts as failed.
        failures += 1
        samples.append(f"server process(es) {gone} exited during the phase")
    cpu = sum(cpu_after.values()) - sum(cpu_before.get(p, 0.0) for p in cpu_after)
    return Phase(name, len(calls), cpu, wall, latencies, failures, samples)


def postgres_schema(prefix: str, *, exact: bool = False) -> str | None:
    """A fresh schema in the test database (``prefix`` and this process's id, or ``prefix``
    itself with ``exact``; one left there before is dropped), or None when PostgreSQL is not
    reachable."""
    try:
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as conn:
            schema = prefix if exact else f"{prefix}_{os.getpid()}"
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
            return schema
    except psycopg.OperationalError:
        return None


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
