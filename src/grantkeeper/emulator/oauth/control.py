"""The identity part of the control API: what a test uses to set the scene at "Google's accounts".

Clients and users, server auth codes as ``GIDSignIn`` hands them out, revocation by the user,
password changes and signing-key rotation. Bodies are JSON validated by pydantic; errors are
``{"error", "error_description"}`` (:class:`~grantkeeper.emulator.errors.ControlError`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from grantkeeper.emulator.errors import ControlError
from grantkeeper.emulator.oauth import grants
from grantkeeper.emulator.oauth.account_input import ClientIn, UserIn
from grantkeeper.emulator.oauth.grants import ConsentRequest
from grantkeeper.emulator.oauth.rules import invalid_scope_message, normalize_scopes, split_scope
from grantkeeper.emulator.state import EmulatorState


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerAuthCodeIn(_Body):
    client_id: str
    """The app's client (iOS, Android, or the web client itself); becomes ``azp``."""
    server_client_id: str | None = None
    """The backend's web client (``GIDServerClientID``); becomes ``aud``. Defaults to
    ``client_id`` (a web page's own popup code)."""
    email: str
    """The signed-in user; an unknown email creates the test user."""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    prompt: str | None = None
    """``consent`` forces the consent screen, so the exchange returns a refresh token again."""
    include_granted_scopes: bool = True
    offline: bool = True
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: Literal["plain", "S256"] | None = None
    time_limited_seconds: int | None = Field(None, gt=0)
    """The user chose time-based access: the refresh token ends after this many seconds and
    the exchange reports ``refresh_token_expires_in``."""
    redirect_uri: str | None = None
    """Another ``redirect_uri`` the exchange may use besides ``''`` and ``'postmessage'``."""

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_scope(value) if isinstance(value, str) else value


class RevokeIn(_Body):
    client_id: str | None = None


class RotateIn(_Body):
    overlap_seconds: int | None = Field(None, ge=0)


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix="/emulator", tags=["control: identity"])

    def origin(request: Request) -> str:
        return state.origin(str(request.base_url))

    @router.post("/clients", summary="Create an OAuth client")
    def create_client(body: ClientIn, request: Request) -> dict[str, Any]:
        """For ``web``/``installed`` the answer is a Google-format ``client_secret.json`` whose
        URIs point at the emulator; for ``ios``/``android`` it is ``{client_id, type}``."""
        if body.client_id and body.client_id in state.clients:
            raise ControlError(409, "client_exists", "A client with this client_id exists.")
        client = grants.create_client(state, **body.model_dump())
        return grants.client_document(client, origin(request))

    @router.get("/clients", summary="List OAuth clients")
    def list_clients(request: Request) -> list[dict[str, Any]]:
        with state.lock:
            clients = list(state.clients.values())
        return [grants.client_document(c, origin(request)) for c in clients]

    @router.post("/users", summary="Create a test user")
    def create_user(body: UserIn) -> dict[str, Any]:
        try:
            user = grants.create_user(state, **body.model_dump())
        except ValueError as error:
            raise ControlError(409, "user_exists", str(error)) from error
        return user.public()

    @router.get("/users", summary="List test users")
    def list_users() -> list[dict[str, Any]]:
        with state.lock:
            return [u.public() for u in state.users.values()]

    @router.post("/server-auth-code", summary="Mint a server auth code as GIDSignIn does")
    def server_auth_code(body: ServerAuthCodeIn) -> dict[str, str]:
        app_client = state.clients.get(body.client_id)
        server = state.clients.get(body.server_client_id or body.client_id)
        if app_client is None or server is None:
            raise ControlError(404, "unknown_client", "client_id or server_client_id is unknown.")
        if not server.needs_secret:
            raise ControlError(
                400, "invalid_request", "server_client_id must be a web (or installed) client."
            )
        if (problem := invalid_scope_message(body.scopes)) is not None:
            raise ControlError(400, "invalid_scope", problem)
        user = grants.get_or_create_user(state, body.email)
        redirects = set(state.settings.server_auth_code_redirect_uris)
        if app_client.client_id == server.client_id:
            # A web page's own code (GIS popup): its origins, as Google accepts them.
            redirects |= set(server.javascript_origins)
        if body.redirect_uri is not None:
            redirects.add(body.redirect_uri)
        code = grants.issue_code(
            state,
            ConsentRequest(
                user=user,
                client=server,
                azp=(
                    app_client.client_id
                    if state.settings.server_code_azp == "client"
                    else server.client_id
                ),
                scopes=normalize_scopes(body.scopes),
                redirect_uris=frozenset(redirects),
                offline=body.offline,
                force_consent=body.prompt == "consent",
                include_granted_scopes=body.include_granted_scopes,
                nonce=body.nonce,
                code_challenge=body.code_challenge,
                code_challenge_method=(
                    (body.code_challenge_method or "plain") if body.code_challenge else None
                ),
                time_limited_seconds=body.time_limited_seconds,
            ),
        )
        return {"code": code.code, "sub": user.sub}

    @router.post("/users/{sub}/revoke", summary="The user removes the app's access")
    def revoke_user(sub: str, body: RevokeIn | None = None) -> dict[str, int]:
        try:
            count = grants.revoke_user(state, sub, body.client_id if body else None)
        except KeyError as error:
            raise ControlError(404, "unknown_user", "No user with this sub.") from error
        return {"revoked_refresh_tokens": count}

    @router.post("/users/{sub}/password-change", summary="The user changes their password")
    def password_change(sub: str) -> dict[str, int]:
        if sub not in state.users:
            raise ControlError(404, "unknown_user", "No user with this sub.")
        return {"revoked_refresh_tokens": grants.change_password(state, sub)}

    @router.get("/keys", summary="Published and signing key ids")
    def keys() -> dict[str, Any]:
        return _keys_body(state)

    @router.post("/keys/rotate", summary="Add a signing key; retire the oldest after an overlap")
    def rotate(body: RotateIn | None = None) -> dict[str, Any]:
        overlap = body.overlap_seconds if body and body.overlap_seconds is not None else None
        state.keys.rotate(state.settings.key_overlap if overlap is None else overlap)
        return _keys_body(state)

    return router


def _keys_body(state: EmulatorState) -> dict[str, Any]:
    return {
        "kids": [k.kid for k in state.keys.published()],
        "signing_kid": state.keys.signing_key().kid,
    }
