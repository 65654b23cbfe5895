"""``GET /oauth2/v2/userinfo``: the Google OAuth2 API v2 profile (``build("oauth2", "v2")``).

Older than OpenID Connect's ``/v1/userinfo`` and still called by many libraries, it answers in
its own shape (the ``Userinfo`` schema of Google's ``oauth2 v2`` discovery document): ``id``
instead of ``sub`` and ``verified_email`` instead of ``email_verified``. It is a Google API, so a
bad token gets the API front end's JSON envelope rather than an OAuth error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from grantkeeper.emulator.google_api import ApiMethod, GoogleApiRoute, authorize
from grantkeeper.emulator.oauth.rules import EMAIL_SCOPE, PROFILE_SCOPE
from grantkeeper.emulator.state import EmulatorState

GET = ApiMethod(
    service="oauth2.googleapis.com",
    rpc="google.identity.oauth2.v2.UserInfo.Get",
    endpoint="userinfo.v2",
    scopes=frozenset({"openid", EMAIL_SCOPE, PROFILE_SCOPE}),
)


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(route_class=GoogleApiRoute, tags=["OAuth2 API v2"])

    async def userinfo(request: Request) -> JSONResponse:
        caller = await authorize(state, request, GET)
        with state.lock:
            user = state.users[caller.sub]
        info: dict[str, Any] = {"id": user.sub}
        if EMAIL_SCOPE in caller.scopes:
            info |= {"email": user.email, "verified_email": user.email_verified}
        if PROFILE_SCOPE in caller.scopes:
            info |= {
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "picture": user.picture,
            }
            if state.settings.include_locale_claim:
                info["locale"] = user.locale
        if user.hd:
            info["hd"] = user.hd
        return JSONResponse(info)

    for path in ("/oauth2/v2/userinfo", "/userinfo/v2/me"):
        router.add_api_route(path, userinfo, methods=["GET"], summary="The user's profile (v2)")
    return router
