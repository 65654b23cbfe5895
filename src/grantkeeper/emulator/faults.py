"""Injected failures: per endpoint (status and body, delay, malformed JSON, dropped connection)
and per ID token (``alg: none``, wrong key, unknown kid, wrong claims, bad times).

A fault is armed with ``POST /emulator/faults`` and fires on the next ``count`` calls of its
endpoint (or forever with ``count: null``). Routers ask :meth:`FaultBook.take` with their endpoint
name and answer with :func:`fault_response`; raising :class:`DropConnection` makes the server
close the connection mid-response (see :mod:`grantkeeper.emulator.middleware`).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import Response

IdTokenFaultKind = Literal[
    "alg_none",
    "wrong_key",
    "unknown_kid",
    "wrong_iss",
    "wrong_aud",
    "wrong_azp",
    "expired",
    "iat_future",
]
ID_TOKEN_FAULTS: tuple[str, ...] = IdTokenFaultKind.__args__  # type: ignore[attr-defined]

#: Endpoint names of the OAuth side; the Drive and Photos routers add their own ("drive", ...).
OAUTH_ENDPOINTS = ("discovery", "certs", "token", "revoke", "tokeninfo", "userinfo", "auth")


class DropConnection(Exception):
    """Raised by a route: the server sends headers, then closes the connection without a body."""


@dataclass
class Fault:
    """One armed failure. With no ``status``, ``malformed_json`` or ``drop_connection`` the call
    is only delayed and then answered normally."""

    endpoint: str
    status: int | None = None
    body: Any = None
    """JSON body (object, list, ...) or, if a string, sent as ``text/plain``."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: int = 0
    malformed_json: bool = False
    drop_connection: bool = False
    count: int | None = 1
    """Calls left; ``None`` means until cleared."""
    id_token: str | None = None
    """For endpoint ``id_token``: the kind of bad ID token to mint (see ``ID_TOKEN_FAULTS``)."""

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
            "delay_ms": self.delay_ms,
            "malformed_json": self.malformed_json,
            "drop_connection": self.drop_connection,
            "count": self.count,
            "id_token": self.id_token,
        }

    @property
    def answers(self) -> bool:
        """Whether the fault replaces the normal answer (rather than only delaying it)."""
        return self.status is not None or self.malformed_json or self.drop_connection


class FaultBook:
    """Armed faults, first in first out per endpoint; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self, endpoint: str | None = None) -> int:
        with self._lock:
            before = len(self._faults)
            self._faults = [
                f for f in self._faults if endpoint is not None and f.endpoint != endpoint
            ]
            return before - len(self._faults)

    def take(self, endpoint: str) -> Fault | None:
        """The first armed fault for ``endpoint``, consuming one of its uses; ``None`` if none."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint == endpoint:
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
            return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]


async def fault_response(fault: Fault, default_body: Any = None) -> Response | None:
    """Wait out the fault's delay, then the answer it dictates, or ``None`` to answer normally.

    ``default_body`` is the body used when the fault names a status but no body (a router passes
    its own error shape, e.g. ``{"error": "internal_failure"}``)."""
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault.drop_connection:
        raise DropConnection
    if fault.malformed_json:
        # Cut in the middle of a member, as a proxy that gave up mid-body would.
        return Response(
            b'{"access_token": "ya29.',
            status_code=fault.status or 200,
            media_type="application/json",
            headers=fault.headers,
        )
    if fault.status is None:
        return None
    body = fault.body if fault.body is not None else default_body
    if isinstance(body, str):
        return Response(
            body, status_code=fault.status, media_type="text/plain", headers=fault.headers
        )
    return Response(
        json.dumps(body if body is not None else {}, indent=2),
        status_code=fault.status,
        media_type="application/json; charset=utf-8",
        headers=fault.headers,
    )
