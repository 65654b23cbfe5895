"""Request guards: transport security, the CSRF header, body size and service keys."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request

from grantkeeper import untrusted_json
from grantkeeper.errors import (
    ConfigurationError,
    CsrfHeaderMissing,
    InsecureTransport,
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
)


def require_https(request: Request, allow_insecure_http: bool) -> None:
    """Refuse plain HTTP unless allowed; a trusted proxy's ``X-Forwarded-Proto`` has already been
    applied to the scope by uvicorn's ``ProxyHeadersMiddleware``."""
    if request.url.scheme != "https" and not allow_insecure_http:
        raise InsecureTransport("This endpoint only accepts HTTPS.")


#: The draft's keys are UUIDs in practice; anything printable up to this length is accepted.
MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (IETF httpapi idempotency-key draft: an RFC 8941 String
    such as ``"8e03978e-40d5-43e8-bc93-6894a57f9324"``; a bare token is accepted too)."""
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("Send one Idempotency-Key header, not several.")
    value = values[0].strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if (
        not value
        or len(value) > MAX_IDEMPOTENCY_KEY
        or not all(0x20 <= ord(c) < 0x7F for c in value)
    ):
        raise InvalidRequest(
            f"The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII "
            'characters, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324".'
        )
    return value


def require_requested_with(request: Request) -> None:
    # Google's guide: "Without the X-Requested-With header, this request could be forged."
    if not request.headers.get("x-requested-with"):
        raise CsrfHeaderMissing("The X-Requested-With header is required.")


async def read_fields(
    request: Request, max_bytes: int, *, optional: bool = False
) -> dict[str, Any]:
    """The body as a flat dict, from JSON or an urlencoded form, read up to ``max_bytes``;
    with ``optional`` an empty body is an empty dict."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"The body is larger than {max_bytes} bytes.")
    if optional and not body.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or (content_type == "" and body.lstrip()[:1] == b"{"):
        data = parse_json_body(bytes(body))
        if not isinstance(data, dict):
            raise InvalidRequest("The JSON body must be an object.")
        return data
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise InvalidRequest("The form is not valid UTF-8.") from None
        return {key: values[-1] for key, values in form.items()}
    raise InvalidRequest("Send JSON (application/json) or a form (x-www-form-urlencoded).")


def parse_json_body(body: bytes) -> Any:
    """JSON from a client; deep nesting or lone surrogates get a clear 400 (not a 500)."""
    try:
        return untrusted_json.loads(body)
    except untrusted_json.UnsafeJson as error:
        raise InvalidRequest(f"The JSON body is {error}.") from None


class ServiceKeys:
    """Service API keys, kept only as SHA-256 digests and compared in constant time."""

    def __init__(
        self, configured: Sequence[str], *, name: str = "GRANTKEEPER_SERVICE_API_KEYS"
    ) -> None:
        digests: list[bytes] = []
        for index, item in enumerate(configured, start=1):
            if item.startswith("sha256:"):
                try:
                    digest = bytes.fromhex(item.removeprefix("sha256:"))
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ConfigurationError(f"{name} entry {index} is not sha256:<64 hex digits>.")
            else:
                if len(item) < 16:
                    raise ConfigurationError(f"{name} entry {index} is shorter than 16 characters.")
                digest = hashlib.sha256(item.encode()).digest()
            digests.append(digest)
        self._digests = tuple(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, request: Request) -> None:
        if not self._digests:
            raise Unauthorized(
                "The token API is disabled: GRANTKEEPER_SERVICE_API_KEYS holds no key."
            )
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("Send Authorization: Bearer <service key>.")
        digest = hashlib.sha256(presented.strip().encode()).digest()
        # Compare against every key so timing does not tell which one (or whether any) matched.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Unauthorized("The service key is not one of GRANTKEEPER_SERVICE_API_KEYS.")
