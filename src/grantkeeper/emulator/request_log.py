"""``GET /emulator/requests``: what reached Google's endpoints, for a user debugging a test.

Each entry is the method, the path (never the query string, where Google accepts tokens), the
status and the OAuth client the call came from: taken from a bearer token's record, HTTP Basic,
or a ``client_id`` in the query or form. Tokens, codes and secrets are never kept; a path whose
segment is itself a credential (a Photos baseUrl key) is shown redacted.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import Message, Scope

from grantkeeper.emulator.google_api import bearer_token
from grantkeeper.emulator.state import EmulatorState

KEPT = 1000
"""Entries kept, oldest dropped first."""
_FORM = "application/x-www-form-urlencoded"
_FORM_LIMIT = 64 * 1024
_CREDENTIAL_PATHS = ("/lh3/",)


class RequestLog:
    """The last :data:`KEPT` calls of Google's endpoints, newest last."""

    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=KEPT)

    def add(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)

    def list(self, limit: int | None = None) -> list[dict[str, Any]]:
        entries = list(self.entries)
        return entries[-limit:] if limit else entries


def request_log(state: EmulatorState) -> RequestLog:
    return state.extension("request_log", RequestLog)


def shown_path(path: str) -> str:
    for prefix in _CREDENTIAL_PATHS:
        if path.startswith(prefix):
            return prefix + "[redacted]"
    return path


class BodyTap:
    """Keeps the first bytes of a form body as the app reads it, to find its ``client_id``."""

    def __init__(self, scope: Scope) -> None:
        content_type = Headers(scope=scope).get("content-type", "")
        self.active = content_type.split(";")[0].strip().lower() == _FORM
        self.body = bytearray()

    def see(self, message: Message) -> None:
        if self.active and message["type"] == "http.request" and len(self.body) < _FORM_LIMIT:
            self.body += message.get("body", b"")[: _FORM_LIMIT - len(self.body)]

    def client_id(self) -> str | None:
        if not self.body:
            return None
        values = parse_qs(self.body.decode("latin-1")).get("client_id")
        return values[0] if values else None


def client_of(state: EmulatorState, scope: Scope, tap: BodyTap) -> str | None:
    """The OAuth client a call came from, or ``None`` when it does not say."""
    headers = Headers(scope=scope)
    authorization = headers.get("authorization", "")
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    token = bearer_token(
        authorization if authorization.lower().startswith("bearer") else None, query
    )
    if token:
        with state.lock:
            record = state.access_tokens.get(token)
        if record is not None:
            return record.client_id
    if authorization.lower().startswith("basic "):
        try:
            user = base64.b64decode(authorization[6:].strip()).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    return query.get("client_id") or tap.client_id()
