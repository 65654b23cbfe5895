"""``POST /v1/google/risc``: Google's Cross-Account Protection events (RFC 8935 push)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from grantkeeper.errors import InvalidSecurityEvent, PayloadTooLarge
from grantkeeper.web.auth import KeeperDep
from grantkeeper.web.guards import require_https
from grantkeeper.web.openapi import problems
from grantkeeper.web.schemas import RiscReceipt, SecurityEventProblem

router = APIRouter()

MAX_SET_BYTES = 64 * 1024


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
async def receive_security_event(request: Request, keeper: KeeperDep) -> JSONResponse:
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
    receipt = await keeper.receive_security_event(token)
    return JSONResponse(receipt.to_json(), status_code=202)
