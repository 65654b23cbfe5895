"""OpenID discovery, signing keys, revocation, tokeninfo and userinfo, as Google serves them."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.oauth import grants
from grantkeeper.emulator.oauth.http import (
    bearer_token,
    fault_gate,
    google_json,
    oauth_error,
    read_form,
)
from grantkeeper.emulator.oauth.rules import EMAIL_SCOPE, PROFILE_SCOPE, scope_string
from grantkeeper.emulator.state import EmulatorState

_NOT_FOUND_HTML = (
    "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
    "<p><b>404.</b> <ins>That's an error.</ins><p>The requested URL was not found on this "
    "server. <ins>That's all we know.</ins>"
)
_USERINFO_CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'


def discovery_document(state: EmulatorState, origin: str) -> dict[str, Any]:
    """Google's ``openid-configuration`` (google-protocol.md §1), values as Google serves them,
    endpoints on the emulator. Google advertises more than the emulator implements
    (implicit and hybrid response types, the device and JWT-bearer grants): a client reading
    this document must see what it would see at Google. The emulator refuses those requests
    (``unsupported_response_type``, ``unsupported_grant_type``; ``/device/code`` is a 404)."""
    claims = [
        "aud",
        "email",
        "email_verified",
        "exp",
        "family_name",
        "given_name",
        "iat",
        "iss",
        "name",
        "picture",
        "sub",
    ]
    if state.settings.include_locale_claim:
        claims.append("locale")
    return {
        "issuer": state.issuer(origin),
        "authorization_endpoint": f"{origin}/o/oauth2/v2/auth",
        "device_authorization_endpoint": f"{origin}/device/code",
        "token_endpoint": f"{origin}/token",
        "userinfo_endpoint": f"{origin}/v1/userinfo",
        "revocation_endpoint": f"{origin}/revoke",
        "jwks_uri": f"{origin}/oauth2/v3/certs",
        "response_types_supported": [
            "code",
            "token",
            "id_token",
            "code token",
            "code id_token",
            "token id_token",
            "code token id_token",
            "none",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": sorted(claims),
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
    }


def _certs_headers(state: EmulatorState) -> dict[str, str]:
    # Google's max-age counts down towards its next key change; do the same when one is planned.
    max_age = state.settings.certs_max_age
    change = state.keys.seconds_to_next_change()
    if change is not None:
        max_age = max(min(max_age, int(change)), 0)
    now = state.clock.now()
    return {
        "Cache-Control": f"public, max-age={max_age}, must-revalidate, no-transform",
        "Expires": format_datetime(now + timedelta(seconds=max_age), usegmt=True),
    }


def _string_values(values: dict[str, Any]) -> dict[str, str]:
    """tokeninfo sends every value as a string, booleans as ``"true"``/``"false"``."""
    return {
        k: (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in values.items()
        if v is not None
    }


def _origin(state: EmulatorState, request: Request) -> str:
    return state.origin(str(request.base_url))


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/.well-known/openid-configuration")
    async def discovery(request: Request) -> Response:
        state.record_call("discovery")
        if (faulted := await fault_gate(state, "discovery")) is not None:
            return faulted
        body = discovery_document(state, _origin(state, request))
        return google_json(body, headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/oauth2/v3/certs")
    async def jwks() -> Response:
        state.record_call("certs")
        if (faulted := await fault_gate(state, "certs")) is not None:
            return faulted
        return google_json(state.keys.jwks(), headers=_certs_headers(state))

    @router.get("/oauth2/v1/certs")
    async def pem_certs() -> Response:
        state.record_call("certs")
        if (faulted := await fault_gate(state, "certs")) is not None:
            return faulted
        return google_json(state.keys.certificates(), headers=_certs_headers(state))

    async def revoke(request: Request) -> Response:
        state.record_call("revoke")
        if (faulted := await fault_gate(state, "revoke")) is not None:
            return faulted
        form = await read_form(request)
        token = request.query_params.get("token") or form.get("token")
        try:
            if not token:
                raise GoogleOAuthError(400, "invalid_request", "Missing required parameter: token")
            grants.revoke_token(state, token)
        except GoogleOAuthError as error:
            return oauth_error(error)
        return Response(
            state.settings.revoke_success_body, media_type="application/json; charset=utf-8"
        )

    router.add_api_route("/revoke", revoke, methods=["POST"])
    # The legacy host accepted GET as well (zenn.dev/gz; dockstore#2592).
    router.add_api_route("/o/oauth2/revoke", revoke, methods=["GET", "POST"])

    @router.get("/revoke")
    async def revoke_by_get() -> Response:
        # Google answers GET on oauth2.googleapis.com/revoke with an HTML 404 (oauth2client#750).
        state.record_call("revoke")
        return HTMLResponse(_NOT_FOUND_HTML, status_code=404)

    async def tokeninfo(request: Request) -> Response:
        state.record_call("tokeninfo")
        if (faulted := await fault_gate(state, "tokeninfo")) is not None:
            return faulted
        form = await read_form(request)
        params = {**form, **dict(request.query_params)}
        access_token = params.get("access_token") or bearer_token(request)
        id_token = params.get("id_token")
        invalid = GoogleOAuthError(400, "invalid_token", "Invalid Value")
        if id_token:
            claims = _verify_id_token(state, id_token)
            return oauth_error(invalid) if claims is None else google_json(claims)
        if not access_token:
            return oauth_error(
                GoogleOAuthError(
                    400,
                    "invalid_request",
                    "Either access_token, id_token, or token_handle required",
                )
            )
        record = state.lookup_access_token(access_token)
        if record is None:
            return oauth_error(invalid)
        user = state.users.get(record.sub)
        expires_in = int((record.expires_at - state.clock.now()).total_seconds())
        info: dict[str, Any] = {
            "azp": record.azp or record.client_id,
            "aud": record.client_id,
            "sub": record.sub,
            "scope": scope_string(record.scopes),
            "exp": int(record.expires_at.timestamp()),
            "expires_in": max(expires_in, 0),
        }
        if user is not None and EMAIL_SCOPE in record.scopes:
            info["email"] = user.email
            info["email_verified"] = user.email_verified
        info["access_type"] = "offline" if record.offline else "online"
        return google_json(_string_values(info))

    for path in ("/tokeninfo", "/oauth2/v3/tokeninfo"):
        router.add_api_route(path, tokeninfo, methods=["GET", "POST"])

    async def userinfo(request: Request) -> Response:
        state.record_call("userinfo")
        if (faulted := await fault_gate(state, "userinfo")) is not None:
            return faulted
        token = bearer_token(request) or request.query_params.get("access_token")
        record = state.lookup_access_token(token) if token else None
        user = state.users.get(record.sub) if record else None
        if record is None or user is None:
            return google_json(
                {"error": "invalid_request", "error_description": "Invalid Credentials"},
                401,
                {"WWW-Authenticate": _USERINFO_CHALLENGE},
            )
        info: dict[str, Any] = {"sub": user.sub}
        if PROFILE_SCOPE in record.scopes:
            info |= {
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "picture": user.picture,
            }
            if state.settings.include_locale_claim:
                info["locale"] = user.locale
        if EMAIL_SCOPE in record.scopes:
            info |= {"email": user.email, "email_verified": user.email_verified}
        if user.hd:
            info["hd"] = user.hd
        return google_json(info)

    for path in ("/v1/userinfo", "/oauth2/v3/userinfo"):
        router.add_api_route(path, userinfo, methods=["GET", "POST"])

    return router


def _verify_id_token(state: EmulatorState, token: str) -> dict[str, str] | None:
    """tokeninfo's view of an ID token: claims and header as strings, if it is valid now."""
    keys = KeySet.import_key_set(state.keys.jwks())  # type: ignore[arg-type]
    try:
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
    except (JoseError, ValueError):
        return None
    claims = decoded.claims
    now = state.clock.now().timestamp()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int) or not iat <= now < exp:
        return None
    if not state.settings.tokeninfo_id_token_header:
        return _string_values(claims)
    header = {k: decoded.header.get(k) for k in ("alg", "kid", "typ")}
    return _string_values({**claims, **header})
