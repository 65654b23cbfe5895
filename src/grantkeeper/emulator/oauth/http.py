"""Request parsing and answers shared by the emulator's OAuth routes.

Forms are parsed here, not by FastAPI, so that a bad request gets Google's error body and never
a FastAPI 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import Response

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.faults import fault_response
from grantkeeper.emulator.state import EmulatorState

FORM = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body (first value of each field); empty for any other content type,
    which is how Google reads a JSON body: as a request with no fields at all."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST" or content_type != FORM:
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    form: dict[str, str] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        form.setdefault(key, value)
    return form


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``Authorization: Basic`` client credentials (RFC 6749 §2.3.1 form-encodes both parts)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote(client_id), unquote(secret)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def google_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON the way Google's OAuth endpoints send it: two-space indented, UTF-8, and not to be
    cached unless ``headers`` says otherwise."""
    all_headers = dict(headers or {})
    if "Cache-Control" not in all_headers:
        all_headers |= {
            "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
            "Pragma": "no-cache",
        }
    return Response(
        json.dumps(body, indent=2) + "\n",
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers=all_headers,
    )


def oauth_error(error: GoogleOAuthError, headers: dict[str, str] | None = None) -> Response:
    return google_json(error.body(), error.status, headers)


async def fault_gate(
    state: EmulatorState, endpoint: str, default_body: Any = None
) -> Response | None:
    """The armed fault's answer for this call of ``endpoint``, or ``None`` to answer normally."""
    fault = state.faults.take(endpoint)
    if fault is None:
        return None
    if default_body is None:
        default_body = {"error": "internal_failure", "error_description": "Backend Error"}
    return await fault_response(fault, default_body)
