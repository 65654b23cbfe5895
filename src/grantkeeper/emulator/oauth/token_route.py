"""``POST /token``: Google's token endpoint (and the legacy paths clients still hard-code)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.oauth import grants
from grantkeeper.emulator.oauth.http import (
    basic_credentials,
    fault_gate,
    google_json,
    oauth_error,
    read_form,
)
from grantkeeper.emulator.state import EmulatorState

TOKEN_PATHS = ("/token", "/o/oauth2/token", "/oauth2/v4/token", "/oauth2/v3/token")


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def token(request: Request) -> Response:
        form = await read_form(request)
        grant_type = form.get("grant_type", "")
        state.record_token_call(grant_type)
        faulted = await fault_gate(state, "token")
        if faulted is not None:
            return faulted
        try:
            if grant_type not in ("authorization_code", "refresh_token"):
                raise GoogleOAuthError(
                    400, "unsupported_grant_type", f"Invalid grant_type: {grant_type[:64]}"
                )
            basic = basic_credentials(request)
            client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
            client = grants.authenticate_client(state, client_id, secret)
            issuer = state.issuer(str(request.base_url))
            if grant_type == "authorization_code":
                body = grants.exchange_code(state, client, form, issuer)
            else:
                body = grants.refresh(state, client, form, issuer)
        except GoogleOAuthError as error:
            return oauth_error(error)
        return google_json(body)

    for path in TOKEN_PATHS:
        router.add_api_route(path, token, methods=["POST"])
    return router
