"""The keeper's HTTP API. Routes only: parsing, guards, and a call into the :class:`Keeper`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from grantkeeper.errors import InvalidRequest
from grantkeeper.keeper import Keeper
from grantkeeper.web.guards import ServiceKeys, read_fields, require_https, require_requested_with

router = APIRouter()

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def get_keeper(request: Request) -> Keeper:
    keeper: Keeper = request.app.state.keeper
    return keeper


def _https(request: Request) -> None:
    require_https(request, request.app.state.allow_insecure_http)


def _service_key(request: Request) -> None:
    _https(request)
    keys: ServiceKeys = request.app.state.service_keys
    keys.check(request)


KeeperDep = Annotated[Keeper, Depends(get_keeper)]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


@router.post(
    "/v1/google/signin",
    tags=["sign-in"],
    summary="Redeem a one-time server auth code",
    responses={
        400: _PROBLEM,
        401: _PROBLEM,
        403: _PROBLEM,
        413: _PROBLEM,
        502: _PROBLEM,
        503: _PROBLEM,
        504: _PROBLEM,
    },
)
async def sign_in(request: Request, keeper: KeeperDep) -> JSONResponse:
    """The app POSTs the ``serverAuthCode`` it got from Google Sign-In (JSON or form:
    ``code``, optional ``platform`` ``ios|android|web``) with an ``X-Requested-With`` header.
    The answer is the verified user and the state of the grant."""
    _https(request)
    require_requested_with(request)
    fields = await read_fields(request, request.app.state.max_request_bytes)
    code = fields.get("code")
    platform = fields.get("platform") or "ios"
    if not isinstance(code, str) or not code:
        raise InvalidRequest("The field 'code' (the server auth code) is required.")
    if not isinstance(platform, str):
        raise InvalidRequest("The field 'platform' must be one of ios, android, web.")
    result = await keeper.sign_in(code, platform=platform)
    return JSONResponse(result.to_json(), headers=NO_STORE)


@router.get(
    "/v1/users/{sub}/token",
    tags=["offline access"],
    summary="A fresh access token for a user",
    dependencies=[Depends(_service_key)],
    responses={401: _PROBLEM, 403: _PROBLEM, 404: _PROBLEM, 409: _PROBLEM, 503: _PROBLEM},
)
async def user_token(
    sub: str,
    keeper: KeeperDep,
    scope: Annotated[list[str] | None, Query(description="Scopes the token must carry")] = None,
) -> JSONResponse:
    """For workers and other backends: a token valid for at least the refresh margin."""
    scopes = [s for item in scope or [] for s in item.split()]
    token = await keeper.access_token(sub, scopes=scopes or None)
    return JSONResponse(token.to_json(), headers=NO_STORE)


@router.delete(
    "/v1/users/{sub}/grant",
    tags=["offline access"],
    summary="Disconnect: revoke the grant at Google and erase the tokens",
    dependencies=[Depends(_service_key)],
    responses={401: _PROBLEM, 404: _PROBLEM},
)
async def delete_grant(
    sub: str,
    keeper: KeeperDep,
    forget: Annotated[bool, Query(description="Also erase the user's profile")] = False,
) -> JSONResponse:
    outcome = await keeper.disconnect(sub, forget=forget)
    return JSONResponse(outcome.to_json(), headers=NO_STORE)


@router.get("/healthz", tags=["operations"], summary="Liveness")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="Readiness: the store answers")
async def readyz(keeper: KeeperDep) -> Response:
    problems = await keeper.readiness()
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})
