"""Serving the keeper's HTTP API with uvicorn, in one process or in several worker processes.

Several workers share one listening socket and one store: SQLite in WAL mode (one writer at a
time, readers never blocked) or PostgreSQL. Nothing a request needs lives only in a worker's
memory: the single-flight refresh holds across workers through the store's lease, and a
retried sign-in finds the first answer through the store's claim on the code.

uvicorn picks uvloop and httptools (its ``standard`` extras) where the platform has them, and
asyncio with h11 elsewhere.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from fastapi import FastAPI

from grantkeeper.keeper import Keeper
from grantkeeper.logsafety import redact_access_log, uvicorn_log_config
from grantkeeper.settings import Settings

__all__ = ["app_from_environment", "default_workers", "serve"]

#: How long a worker may take to start or to answer the supervisor's health check before it is
#: replaced (uvicorn's default, 5 s, restarts workers in a loop on a busy 2-core machine: a
#: worker imports FastAPI and SQLAlchemy and opens the store before it answers).
WORKER_HEALTHCHECK_SECONDS = 60
#: The overrides ``serve`` hands its worker processes (they read settings afresh).
_OVERRIDES = {"data_dir": "GRANTKEEPER_DATA_DIR"}


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def app_from_environment() -> FastAPI:
    """The app of one worker process (a uvicorn factory): settings from ``GRANTKEEPER_*``."""
    from grantkeeper.web.app import create_app

    # Each worker configures its own logging, so each installs the redaction again.
    redact_access_log()
    return create_app(Keeper(Settings()), owns_keeper=True)


def serve(
    settings: Settings, overrides: dict[str, Any], host: str, port: int, workers: int
) -> None:
    """Serve until interrupted. ``overrides`` are the settings given on the command line.

    ``grantkeeper serve`` has already opened (and migrated) the store and made the embedded key
    file, once, before the workers start, so they do not race to."""
    redact_access_log()
    if workers == 1:
        from grantkeeper.web.app import create_app

        app = create_app(Keeper(settings), owns_keeper=True)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=uvicorn_log_config(settings.log_format),
            proxy_headers=False,
            timeout_keep_alive=settings.keep_alive_seconds,
            access_log=settings.access_log,
        )
        return
    for name, value in overrides.items():
        os.environ[_OVERRIDES[name]] = str(value)
    uvicorn.run(
        "grantkeeper.web.serving:app_from_environment",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        host=host,
        port=port,
        log_level="info",
        log_config=uvicorn_log_config(settings.log_format),
        # Only GRANTKEEPER_TRUSTED_PROXIES decides whom X-Forwarded-* is believed from (the
        # app's own middleware); uvicorn's would trust FORWARDED_ALLOW_IPS (127.0.0.1) first.
        proxy_headers=False,
        timeout_keep_alive=settings.keep_alive_seconds,
        access_log=settings.access_log,
    )
