"""The emulator's Cross-Account Protection (RISC) transmitter.

What Google does (google-protocol.md §6): publish ``/.well-known/risc-configuration`` (an
``issuer`` — ``https://accounts.google.com/`` *with* a trailing slash in the doc's example SET —
and a ``jwks_uri``), sign Security Event Tokens (RFC 8417) with its usual RS256 keys and POST
them raw to the receiver the project registered with ``stream:update``, expecting 202.

The emulator does the same with its own signing keys (the ones behind ``/oauth2/v3/certs``)
and issuer (``<issuer>/``, changeable), plus a control API so a test can make Google "send"
any event:

- ``POST /emulator/risc/receivers`` ``{client_id, url}``: deliver events for that client id
  (the SET's ``aud``) to ``url``. ``GET`` lists them.
- ``POST /emulator/risc/send`` ``{event_type, sub, client_id, reason?, state?, token?,
  token_identifier_alg?, token_identifier?, jti?, iat?, aud?, iss?, apply?, url?}``: build the
  SET exactly as §6.4, sign it, POST it as ``application/secevent+jwt`` and answer with the
  receiver's status and the ``jti``. ``event_type`` is a URI or a short name
  (``account-disabled``). For ``token-revoked`` the emulator computes the identifier from the
  refresh token given (or the user's newest one for ``client_id``); with ``apply`` (default
  true) ``tokens-revoked``/``token-revoked`` also kill those tokens here, as Google's
  revocation would have. ``jti``/``aud``/``iss`` overrides exist to test a receiver's replay
  and claim checks.
- ``POST /emulator/risc/settings`` ``{issuer}``: the RISC issuer (``null`` for the default).
- ``GET /v1beta/stream``, ``POST /v1beta/stream:update``, ``POST /v1beta/stream:verify``,
  ``GET /v1beta/stream/status``, ``POST /v1beta/stream/status:update``: Google's stream
  management, enough for a setup script (any bearer token is accepted), with Google's error
  envelope. The delivery URL must be HTTPS, as at Google, except on a loopback host (so a
  local receiver can be tested). While the stream is disabled nothing is delivered and
  nothing is kept for later (§6.1).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from grantkeeper.emulator.errors import ControlError
from grantkeeper.emulator.oauth import grants
from grantkeeper.emulator.oauth.http import bearer_token, google_json
from grantkeeper.emulator.oauth.models import RefreshTokenRecord
from grantkeeper.emulator.oauth.revocation import revoke_one_refresh_token, set_account_disabled
from grantkeeper.emulator.oauth.rules import refresh_token_problem
from grantkeeper.emulator.state import EmulatorState

RISC_EVENT = "https://schemas.openid.net/secevent/risc/event-type/"
OAUTH_EVENT = "https://schemas.openid.net/secevent/oauth/event-type/"
PUSH_DELIVERY = "https://schemas.openid.net/secevent/risc/delivery-method/push"
SET_MEDIA_TYPE = "application/secevent+jwt"

EVENT_URIS = {
    "sessions-revoked": RISC_EVENT + "sessions-revoked",
    "tokens-revoked": OAUTH_EVENT + "tokens-revoked",
    "token-revoked": OAUTH_EVENT + "token-revoked",
    "account-disabled": RISC_EVENT + "account-disabled",
    "account-enabled": RISC_EVENT + "account-enabled",
    "account-credential-change-required": RISC_EVENT + "account-credential-change-required",
    "account-purged": RISC_EVENT + "account-purged",
    "verification": RISC_EVENT + "verification",
}
TOKEN_ALGORITHMS = ("prefix", "hash_base64_sha512_sha512")
STREAM_STATUSES = ("enabled", "disabled")

M = TypeVar("M", bound=BaseModel)


@dataclass
class RiscBook:
    """The emulator's RISC state (kept in ``EmulatorState.extension``; a reset clears it)."""

    issuer: str | None = None
    receivers: dict[str, str] = field(default_factory=dict)
    """Receiver URL by client id (``aud``)."""
    stream_url: str | None = None
    """The project's stream (``stream:update``); used for client ids with no receiver."""
    events_requested: list[str] = field(default_factory=list)
    enabled: bool = True
    """``stream/status``: while disabled, events are dropped, not kept (§6.1)."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def target(self, client_id: str) -> str | None:
        with self.lock:
            return self.receivers.get(client_id) or self.stream_url


class Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_type: str
    client_id: str = Field(min_length=1)
    sub: str | None = None
    reason: str | None = None
    state: str | None = None
    token: str | None = None
    """The refresh token the event is about (``token-revoked``); the emulator hashes it."""
    token_identifier_alg: str = "hash_base64_sha512_sha512"
    token_identifier: str | None = None
    """An identifier sent as given (instead of computing it from ``token``)."""
    jti: str | None = None
    iat: int | None = None
    aud: str | None = None
    iss: str | None = None
    apply: bool = True
    url: str | None = None
    """Deliver here instead of the registered receiver."""
    subject_type: str = "iss-sub"
    """``iss-sub`` or ``id_token_claims`` (which adds the user's ``email``)."""


class RiscSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuer: str | None = None


def book(state: EmulatorState) -> RiscBook:
    return state.extension("risc", RiscBook)


def risc_issuer(state: EmulatorState, origin: str) -> str:
    """The RISC issuer: configured, else the OpenID issuer with a trailing slash (Google's
    example SET says ``https://accounts.google.com/``)."""
    configured = book(state).issuer
    return configured or state.issuer(origin).rstrip("/") + "/"


def configuration_document(state: EmulatorState, origin: str) -> dict[str, Any]:
    return {
        "issuer": risc_issuer(state, origin),
        "jwks_uri": f"{origin}/oauth2/v3/certs",
        "delivery_methods_supported": [PUSH_DELIVERY],
        "configuration_endpoint": f"{origin}/v1beta/stream",
        "verification_endpoint": f"{origin}/v1beta/stream:verify",
    }


def token_identifier(token: str, algorithm: str) -> str:
    """How ``token-revoked`` names a refresh token (google-protocol.md §6.4)."""
    if algorithm == "prefix":
        return token[:16]
    inner = hashlib.sha512(token.encode("utf-8")).digest()
    return base64.b64encode(hashlib.sha512(inner).digest()).decode("ascii")


def build_set(
    state: EmulatorState, request: SendRequest, origin: str, *, token: str | None
) -> tuple[str, dict[str, Any]]:
    """The SET's claims (§6.4) for ``request``, and the event-type URI."""
    uri = EVENT_URIS.get(request.event_type, request.event_type)
    issuer = risc_issuer(state, origin)
    event: dict[str, Any] = {}
    if uri == EVENT_URIS["token-revoked"]:
        identifier = request.token_identifier
        if identifier is None:
            if token is None:
                raise ControlError(
                    400, "invalid_request", "token-revoked needs a token (or a live refresh token)"
                )
            identifier = token_identifier(token, request.token_identifier_alg)
        event["subject"] = {
            "subject_type": "oauth_token",
            "token_type": "refresh_token",
            "token_identifier_alg": request.token_identifier_alg,
            "token": identifier,
        }
    elif request.sub is not None:
        subject: dict[str, Any] = {"subject_type": request.subject_type, "iss": issuer}
        subject["sub"] = request.sub
        user = state.users.get(request.sub)
        if request.subject_type == "id_token_claims" and user is not None:
            subject["email"] = user.email
        event["subject"] = subject
    if request.reason is not None:
        event["reason"] = request.reason
    if request.state is not None:
        event["state"] = request.state
    claims = {
        "iss": request.iss or issuer,
        "aud": request.aud or request.client_id,
        "iat": request.iat if request.iat is not None else int(state.clock.now().timestamp()),
        "jti": request.jti or secrets.token_hex(16),
        "events": {uri: event},
    }
    return uri, claims


def _newest_refresh_token(state: EmulatorState, sub: str | None, client_id: str) -> str | None:
    now = state.clock.now()
    with state.lock:
        live: list[tuple[str, RefreshTokenRecord]] = [
            (value, record)
            for value, record in state.refresh_tokens.items()
            if record.sub == sub
            and client_id in (record.client_id, record.azp)
            and refresh_token_problem(record, now, state.settings) is None
        ]
    if not live:
        return None
    return max(live, key=lambda item: item[1].issued_at)[0]


def _apply(state: EmulatorState, uri: str, request: SendRequest, token: str | None) -> None:
    """What Google did before telling the receiver, so the emulator's tokens agree with the
    event: ``tokens-revoked`` ends the user's grant to the SET's client (``aud``; an iOS or
    Android client reaches the server grant it signed in through); ``token-revoked`` kills
    that refresh token and its consent; ``account-disabled``/``account-purged`` disable the
    account until ``account-enabled``."""
    sub = request.sub
    known = sub is not None and sub in state.users
    if uri == EVENT_URIS["tokens-revoked"] and known:
        assert sub is not None
        # The event's client, not an ``aud`` override (those forge SETs for receiver tests).
        grants.revoke_user(state, sub, request.client_id)
    elif uri == EVENT_URIS["token-revoked"] and token is not None:
        revoke_one_refresh_token(state, token)
    elif uri in (EVENT_URIS["account-disabled"], EVENT_URIS["account-purged"]) and known:
        assert sub is not None
        set_account_disabled(state, sub, True)
    elif uri == EVENT_URIS["account-enabled"] and known:
        assert sub is not None
        set_account_disabled(state, sub, False)


def delivery_url_problem(url: str) -> str | None:
    """Google's refusal of a ``stream:update`` delivery URL, or ``None``. Google wants HTTPS;
    the emulator also takes plain HTTP on a loopback host, where local receivers listen."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return None
    return "The delivery endpoint must be an HTTPS URL."


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def deliver(url: str, token: str, *, attempts: int = 3) -> tuple[int | None, str, int]:
    """POST the SET; retried on connection errors and 5xx. Returns (status, body, attempts)."""
    status: int | None = None
    body = ""
    tried = 0
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        for tried in range(1, attempts + 1):
            try:
                response = await client.post(
                    url,
                    content=token.encode("ascii"),
                    headers={"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"},
                )
            except httpx.TransportError as error:
                status, body = None, f"{type(error).__name__}: {error}"
            else:
                status, body = response.status_code, response.text[:2000]
                if status < 500:
                    break
            if tried < attempts:
                await asyncio.sleep(0.05 * 2**tried)
    return status, body, tried


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def origin(request: Request) -> str:
        return state.origin(str(request.base_url))

    @router.get("/.well-known/risc-configuration")
    async def risc_configuration(request: Request) -> Response:
        state.record_call("risc_configuration")
        return google_json(
            configuration_document(state, origin(request)),
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @router.post("/emulator/risc/receivers")
    async def add_receiver(receiver: Receiver) -> dict[str, Any]:
        registry = book(state)
        with registry.lock:
            registry.receivers[receiver.client_id] = receiver.url
            return {"receivers": dict(registry.receivers)}

    @router.get("/emulator/risc/receivers")
    async def list_receivers() -> dict[str, Any]:
        registry = book(state)
        with registry.lock:
            return {"receivers": dict(registry.receivers), "stream_url": registry.stream_url}

    @router.post("/emulator/risc/settings")
    async def risc_settings(settings: RiscSettings, request: Request) -> dict[str, Any]:
        book(state).issuer = settings.issuer
        return configuration_document(state, origin(request))

    @router.get("/emulator/risc/sent")
    async def sent() -> dict[str, Any]:
        registry = book(state)
        with registry.lock:
            return {"sent": list(registry.sent)}

    @router.post("/emulator/risc/send")
    async def send(request: Request) -> dict[str, Any]:
        body = await _control_body(request, SendRequest)
        if body.token_identifier_alg not in TOKEN_ALGORITHMS:
            raise ControlError(
                400, "invalid_request", f"token_identifier_alg must be one of {TOKEN_ALGORITHMS}"
            )
        token = body.token
        if body.event_type in ("token-revoked", EVENT_URIS["token-revoked"]) and token is None:
            token = _newest_refresh_token(state, body.sub, body.client_id)
        uri, claims = build_set(state, body, origin(request), token=token)
        registry = book(state)
        url = body.url or registry.target(body.client_id)
        if url is None:
            raise ControlError(
                404,
                "no_receiver",
                f"No RISC receiver for client {body.client_id}; POST /emulator/risc/receivers",
            )
        if body.apply:
            _apply(state, uri, body, token)
        signed = state.keys.sign(claims)
        record: dict[str, Any] = {
            "jti": claims["jti"],
            "event_type": uri,
            "aud": claims["aud"],
        }
        if registry.enabled:
            status, answer, attempts = await deliver(url, signed)
        else:
            # Google drops events while the stream is disabled; nothing is sent later.
            status, answer, attempts = None, "", 0
            record["dropped"] = "stream disabled"
        record |= {"status": status, "attempts": attempts}
        with registry.lock:
            registry.sent.append(record)
        return {**record, "url": url, "response": answer, "set": signed}

    @router.get("/v1beta/stream")
    async def get_stream(request: Request) -> Response:
        if (denied := _unauthorized(request)) is not None:
            return denied
        registry = book(state)
        if registry.stream_url is None:
            return _rpc_error(404, "Project has no RISC configuration.")
        return google_json(
            {
                "delivery": {"delivery_method": PUSH_DELIVERY, "url": registry.stream_url},
                "events_requested": registry.events_requested,
            }
        )

    @router.post("/v1beta/stream:update")
    async def update_stream(request: Request) -> Response:
        if (denied := _unauthorized(request)) is not None:
            return denied
        config, invalid = await _rpc_body(request)
        if invalid is not None:
            return invalid
        delivery = config.get("delivery")
        if not isinstance(delivery, dict) or not isinstance(delivery.get("url"), str):
            return _rpc_error(400, "Stream configuration must contain delivery field.")
        if (problem := delivery_url_problem(delivery["url"])) is not None:
            return _rpc_error(403, problem)
        registry = book(state)
        with registry.lock:
            registry.stream_url = delivery["url"]
            requested = config.get("events_requested")
            registry.events_requested = [str(e) for e in requested or []]
        return google_json({})

    @router.get("/v1beta/stream/status")
    async def get_status(request: Request) -> Response:
        if (denied := _unauthorized(request)) is not None:
            return denied
        registry = book(state)
        if registry.stream_url is None:
            return _rpc_error(404, "Project has no RISC configuration.")
        return google_json({"status": "enabled" if registry.enabled else "disabled"})

    @router.post("/v1beta/stream/status:update")
    async def update_status(request: Request) -> Response:
        if (denied := _unauthorized(request)) is not None:
            return denied
        payload, invalid = await _rpc_body(request)
        if invalid is not None:
            return invalid
        registry = book(state)
        if registry.stream_url is None:
            return _rpc_error(
                404, "Project has no existing RISC configuration, cannot update status."
            )
        status = payload.get("status")
        if status not in STREAM_STATUSES:
            return _rpc_error(403, "Unsupported status. Invalid status.")
        registry.enabled = status == "enabled"
        return google_json({"status": status})

    @router.post("/v1beta/stream:verify")
    async def verify_stream(request: Request) -> Response:
        if (denied := _unauthorized(request)) is not None:
            return denied
        payload, invalid = await _rpc_body(request)
        if invalid is not None:
            return invalid
        registry = book(state)
        if registry.stream_url is None:
            return _rpc_error(404, "Project has no RISC configuration.")
        with state.lock:
            client_ids = [c.client_id for c in state.clients.values() if c.type == "web"]
            client_ids = client_ids or list(state.clients)
        if not client_ids:
            return _rpc_error(
                403, "To use this API your project must have at least one OAuth client configured."
            )
        if not registry.enabled:
            return google_json({})  # accepted, and dropped like every event of a disabled stream
        body = SendRequest(
            event_type="verification",
            client_id=client_ids[0],
            state=str(payload.get("state", "")),
            url=registry.stream_url,
        )
        _, claims = build_set(state, body, origin(request), token=None)
        status, _, _ = await deliver(registry.stream_url, state.keys.sign(claims))
        if status != 202:
            return _rpc_error(400, "Unable to verify the stream.")
        return google_json({})

    return router


_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
}


def _rpc_error(code: int, message: str) -> Response:
    """Google's API error envelope (``{"error": {code, message, status}}``)."""
    body = {"error": {"code": code, "message": message, "status": _RPC_STATUS[code]}}
    return google_json(body, code)


def _unauthorized(request: Request) -> Response | None:
    # Google wants a service-account JWT here; the emulator only insists that one is sent.
    if bearer_token(request) is None:
        return _rpc_error(401, "Unauthorized.")
    return None


async def _rpc_body(request: Request) -> tuple[dict[str, Any], Response | None]:
    """The JSON object a stream call sent, or Google's 400 for anything else."""
    try:
        payload = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}, _rpc_error(400, "Invalid JSON payload received.")
    if not isinstance(payload, dict):
        return {}, _rpc_error(400, "Invalid JSON payload received. Expected an object.")
    return payload, None


async def _control_body(request: Request, model: type[M]) -> M:
    """A control call's body as ``model``. A refusal names the fields only: pydantic's own
    messages echo the values, and ``token`` is a refresh token."""
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in error.errors()})
        raise ControlError(
            400, "invalid_request", "Invalid or missing fields: " + ", ".join(fields)
        ) from None
