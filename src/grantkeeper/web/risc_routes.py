"""``POST /v1/google/risc``: Google's Cross-Account Protection events (RFC 8935 push)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from grantkeeper.errors import InvalidSecurityEvent, PayloadTooLarge
from grantkeeper.keeper.security_events import RiscReceiver
from grantkeeper.web.guards import require_https
from grantkeeper.web.openapi import problems
from grantkeeper.web.schemas import RiscReceipt, SecurityEventProblem

router = APIRouter()

MAX_SET_BYTES = 64 * 1024


def risc_receiver(request: Request) -> RiscReceiver:
    """The app's receiver (``app.state.risc_receiver``), made from the keeper on first use."""
    state = request.app.state
    receiver: RiscReceiver | None = getattr(state, "risc_receiver", None)
    if receiver is None:
        keeper: Any = state.keeper
        receiver = RiscReceiver.create(
            keeper.store,
            issuer=keeper.settings.issuer,
            audiences={keeper.client_id, *keeper.settings.allowed_client_ids},
            clock=keeper.clock,
            webhooks=getattr(state, "webhooks", None),
            # The keeper's provider transport (an ASGI emulator in tests), if it has one.
            transport=getattr(keeper, "transport", None),
            timeout=keeper.settings.http_timeout_seconds,
        )
        state.risc_receiver = receiver
    return receiver


@router.post(
    "/v1/google/risc",
    tags=["cross-account protection"],
    summary="Receive a security event token from Google",
    status_code=202,
    response_model=RiscReceipt,
    responses=problems(400, 403, 413, 503, special={400: [SecurityEventProblem]}),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/secevent+jwt": {"schema": {"type": "string"}}},
        }
    },
)
async def receive_security_event(request: Request) -> JSONResponse:
    """The body is the raw SET (``application/secevent+jwt``). 202 once verified and acted on
    (a redelivery is acknowledged and ignored); 400 with RFC 8935's ``err`` otherwise."""
    require_https(request, request.app.state.allow_insecure_http)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_SET_BYTES:
            raise PayloadTooLarge(f"A security event token is at most {MAX_SET_BYTES} bytes.")
    try:
        token = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidSecurityEvent("invalid_request", "The body is not a compact JWT.") from None
    receipt = await risc_receiver(request).receive(token)
    return JSONResponse(receipt.to_json(), status_code=202)
