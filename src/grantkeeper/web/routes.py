"""The keeper's HTTP API. Routes only: parsing, guards, and a call into the :class:`Keeper`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from grantkeeper.errors import GrantkeeperError, ServiceKeyLimit
from grantkeeper.keeper import Keeper
from grantkeeper.service_keys import ServiceKey
from grantkeeper.web.auth import DisconnectKey, KeeperDep, RefreshKey, TokenKey
from grantkeeper.web.bodies import validated
from grantkeeper.web.guards import (
    idempotency_key,
    read_fields,
    require_https,
    require_requested_with,
)
from grantkeeper.web.openapi import problems, request_body
from grantkeeper.web.schemas import (
    DisconnectAnswer,
    GrantRevokedProblem,
    HealthAnswer,
    MissingScopesProblem,
    ReadinessAnswer,
    RefreshBody,
    ServiceKeyLimitProblem,
    SignInAnswer,
    SignInBody,
    TokenAnswer,
    UntrustedIdTokenProblem,
)

router = APIRouter()

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _https(request: Request) -> None:
    require_https(request, request.app.state.allow_insecure_http)


def client_address(request: Request) -> str:
    """The caller's address as the trusted proxies vouch for it (``ProxyHeadersMiddleware``
    applied ``X-Forwarded-For`` only from them)."""
    return request.client.host if request.client else "unknown"


@router.post(
    "/v1/google/signin",
    tags=["sign-in"],
    summary="Redeem a one-time server auth code",
    response_model=SignInAnswer,
    responses=problems(
        400, 401, 403, 413, 429, 500, 502, 503, 504, special={401: [UntrustedIdTokenProblem]}
    ),
    openapi_extra={
        **request_body(SignInBody, form=True),
        "parameters": [
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "maxLength": 257},
                "description": "A key of the app's choosing (a UUID), the same on every retry "
                'of one sign-in, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324" (IETF httpapi '
                "idempotency-key draft). A retry with the same code and key gets the first "
                "answer marked replayed; a used code without it, or with another, is 400 "
                "invalid_code.",
            }
        ],
    },
)
async def sign_in(request: Request, keeper: KeeperDep) -> JSONResponse:
    """The app POSTs the ``serverAuthCode`` it got from Google Sign-In (JSON or form:
    ``code``, optional ``platform`` ``ios|android|web`` and ``nonce``) with an
    ``X-Requested-With`` header and, to make retries safe, an ``Idempotency-Key`` header. The
    answer is the verified user and the state of the grant."""
    return await answer_sign_in(request, keeper)


async def answer_sign_in(request: Request, keeper: Keeper) -> JSONResponse:
    """The sign-in route's work, from the request on (``hot_routes`` calls it too)."""
    try:
        _https(request)
        request.app.state.signin_limiter.hit(client_address(request))
        require_requested_with(request)
        fields = await read_fields(request, request.app.state.max_request_bytes)
        body = validated(SignInBody, fields)
        key = idempotency_key(request)
    except GrantkeeperError as error:
        await keeper.sign_in_refused(error)  # refused before the provider: still counted
        raise
    result = await keeper.sign_in(
        body.code, platform=body.platform, nonce=body.nonce, idempotency_key=key
    )
    return JSONResponse(result.to_json(), headers=NO_STORE)


@router.get(
    "/v1/users/{sub}/token",
    tags=["offline access"],
    summary="A fresh access token for a user",
    response_model=TokenAnswer,
    responses=problems(
        400,
        401,
        403,
        404,
        409,
        429,
        500,
        502,
        503,
        504,
        special={
            403: [MissingScopesProblem, ServiceKeyLimitProblem],
            409: [GrantRevokedProblem],
        },
    ),
)
async def user_token(
    sub: str,
    keeper: KeeperDep,
    key: TokenKey,
    scope: Annotated[list[str] | None, Query(description="Scopes the token must carry")] = None,
) -> JSONResponse:
    """For workers and other backends: a token valid for at least the refresh margin."""
    return await answer_token(keeper, key, sub, scope)


async def answer_token(
    keeper: Keeper, key: ServiceKey, sub: str, scope: list[str] | None
) -> JSONResponse:
    """The token route's work once the key is checked (``hot_routes`` calls it too)."""
    scopes = [s for item in scope or [] for s in item.split()]
    if key.scopes is not None:
        beyond = key.scopes_beyond(scopes)
        if beyond or not scopes:
            allowed = sorted(key.scopes)
            raise ServiceKeyLimit(
                key.name,
                "scopes",
                allowed,
                f"The service key {key.name!r} may ask only for tokens naming its scopes "
                "(scope=…); "
                + (f"not for {' '.join(beyond)}." if beyond else "this request named none."),
            )
    token = await keeper.access_token(sub, scopes=scopes or None, caller=key.name)
    return JSONResponse(token.to_json(), headers=NO_STORE)


@router.post(
    "/v1/users/{sub}/token/refresh",
    tags=["offline access"],
    summary="Force a refresh: Google refused the token",
    response_model=TokenAnswer,
    responses=problems(
        400,
        401,
        403,
        404,
        409,
        413,
        429,
        500,
        502,
        503,
        504,
        special={403: [ServiceKeyLimitProblem], 409: [GrantRevokedProblem]},
    ),
    openapi_extra=request_body(RefreshBody, required=False),
)
async def refresh_token(
    request: Request, sub: str, keeper: KeeperDep, key: RefreshKey
) -> JSONResponse:
    """For a worker that got 401 from a Google API. With ``rejected_token`` the keeper refreshes
    unless it already stores a newer token (then that one is the answer), so many workers
    rejecting the same token cause one refresh and all get the same new token. Without a body
    the stored token is replaced."""
    return await answer_refresh(request, keeper, key, sub)


async def answer_refresh(
    request: Request, keeper: Keeper, key: ServiceKey, sub: str
) -> JSONResponse:
    """The forced refresh's work once the key is checked (``hot_routes`` calls it too)."""
    fields = await read_fields(request, request.app.state.max_request_bytes, optional=True)
    body = validated(RefreshBody, fields)
    token = await keeper.refresh(sub, rejected=body.rejected_token, caller=key.name)
    return JSONResponse(token.to_json(), headers=NO_STORE)


@router.delete(
    "/v1/users/{sub}/grant",
    tags=["offline access"],
    summary="Disconnect: revoke the grant at Google and erase the tokens",
    response_model=DisconnectAnswer,
    responses=problems(
        400, 401, 403, 404, 429, 500, 502, 503, special={403: [ServiceKeyLimitProblem]}
    ),
)
async def delete_grant(
    sub: str,
    keeper: KeeperDep,
    key: DisconnectKey,
    forget: Annotated[bool, Query(description="Also erase the user's profile")] = False,
) -> JSONResponse:
    outcome = await keeper.disconnect(sub, forget=forget, caller=key.name)
    return JSONResponse(outcome.to_json(), headers=NO_STORE)


@router.get("/healthz", tags=["operations"], summary="Liveness", response_model=HealthAnswer)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: the store answers",
    response_model=ReadinessAnswer,
    # 401/403: GRANTKEEPER_OPS_KEY and the HTTPS rule (web/ops_access.py).
    responses={503: {"description": "Not ready", "model": ReadinessAnswer}, **problems(401, 403)},
)
async def readyz(keeper: KeeperDep) -> Response:
    problems = await keeper.readiness()
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})
