"""What every emulated Google API shares: the JSON error envelope, bearer-token checks, ``fields=``.

Google's API front end answers every API the same way when a token is missing, bad, expired or
short of a scope, so Drive and Photos both build their errors here. The bodies and headers are the
ones captured from Google (google-protocol.md §7); clients such as google-auth's
``AuthorizedSession`` react to the status (a 401 triggers a refresh, a 403 does not), and
googleapiclient's ``HttpError`` shows the ``message`` and ``errors`` members, so they must match.

Routers use :class:`GoogleApiRoute` as their ``route_class``: any :class:`GoogleApiError` raised
by a handler or a dependency becomes Google's envelope instead of FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from grantkeeper.emulator.faults import fault_response
from grantkeeper.emulator.state import EmulatorState

REALM = 'Bearer realm="https://accounts.google.com/"'
_SIGN_IN_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class GoogleApiError(Exception):
    """An error answered in Google's JSON envelope ``{"error": {...}}``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.body["error"].get("message", ""))

    def to_response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _error_info(reason: str, service: str, method: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": service, "method": method},
    }


def credentials_missing(service: str, method: str) -> GoogleApiError:
    """401 for a request without any credential."""
    return GoogleApiError(
        401,
        {
            "error": {
                "code": 401,
                "message": "Request is missing required authentication credential. "
                + _SIGN_IN_HINT,
                "errors": [
                    {
                        "message": "Login Required.",
                        "domain": "global",
                        "reason": "required",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
                "status": "UNAUTHENTICATED",
                "details": [_error_info("CREDENTIALS_MISSING", service, method)],
            }
        },
        {"WWW-Authenticate": REALM},
    )


def invalid_credentials() -> GoogleApiError:
    """401 for an unknown, revoked or expired access token."""
    return GoogleApiError(
        401,
        {
            "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. " + _SIGN_IN_HINT,
                "errors": [
                    {
                        "message": "Invalid Credentials",
                        "domain": "global",
                        "reason": "authError",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
                "status": "UNAUTHENTICATED",
            }
        },
        {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


def insufficient_scope(service: str, method: str, accepted: Iterable[str]) -> GoogleApiError:
    """403 for a valid token that carries none of the scopes the method accepts."""
    scope = " ".join(sorted(accepted))
    return GoogleApiError(
        403,
        {
            "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [
                    {
                        "message": "Insufficient Permission",
                        "domain": "global",
                        "reason": "insufficientPermissions",
                    }
                ],
                "status": "PERMISSION_DENIED",
                "details": [_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", service, method)],
            }
        },
        {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


def legacy_error(
    status: int,
    message: str,
    reason: str,
    *,
    location: str | None = None,
    location_type: str = "parameter",
) -> GoogleApiError:
    """An error in the Drive v3 shape: ``errors[]`` with ``domain``/``reason``, no ``status``."""
    item: dict[str, Any] = {"domain": "global", "reason": reason, "message": message}
    if location is not None:
        item["locationType"] = location_type
        item["location"] = location
    return GoogleApiError(status, {"error": {"code": status, "message": message, "errors": [item]}})


_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RPC_MESSAGE = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
}


def _fault_body(status: int) -> dict[str, Any]:
    return rpc_error(status, _RPC_MESSAGE.get(status, "Injected failure.")).body


def rpc_error(status: int, message: str) -> GoogleApiError:
    """An error in the gRPC-transcoded shape newer APIs (Photos Library) answer with."""
    return GoogleApiError(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "status": _RPC_STATUS.get(status, "UNKNOWN"),
            }
        },
    )


# --------------------------------------------------------------------------------------------
# Bearer tokens and scopes
# --------------------------------------------------------------------------------------------

_BEARER = re.compile(r"\s*Bearer\s+(\S+)\s*\Z", re.IGNORECASE)


def bearer_token(authorization: str | None, query: Mapping[str, str]) -> str | None:
    """The access token of a request: ``Authorization: Bearer`` first, then ``access_token``.

    Google also accepts the token as the ``access_token`` (or legacy ``oauth_token``) query
    parameter; a malformed ``Authorization`` header counts as a bad token, not a missing one.
    """
    if authorization:
        match = _BEARER.match(authorization)
        return match.group(1) if match else ""
    return query.get("access_token") or query.get("oauth_token") or None


@dataclass(frozen=True)
class ApiMethod:
    """One RPC of an emulated API: its names for errors and stats, and the scopes it accepts."""

    service: str  # e.g. "drive.googleapis.com"
    rpc: str  # e.g. "google.apps.drive.v3.DriveFiles.Get"
    endpoint: str  # the name counted in the emulator's stats, e.g. "drive.files.get"
    scopes: frozenset[str]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, the app (Cloud project) and client, and the token's scopes."""

    sub: str
    app: str
    client_id: str
    scopes: frozenset[str]


class FaultAnswer(Exception):
    """An injected fault's answer (``POST /emulator/faults``), replacing the normal one."""

    def __init__(self, response: Response) -> None:
        super().__init__("injected fault")
        self.response = response


async def count_call(state: EmulatorState, endpoint: str) -> None:
    """Count a call for ``GET /emulator/stats`` and fire a fault armed for it, if any.

    Faults are looked up by the endpoint's name (``drive.files.get``), then by its API's
    (``drive``); one that answers raises :class:`FaultAnswer`.
    """
    state.record_call(endpoint)
    api = endpoint.split(".", 1)[0]
    fault = state.faults.take(endpoint) or state.faults.take(api)
    if fault is not None:
        answer = await fault_response(fault, _fault_body(fault.status or 500))
        if answer is not None:
            raise FaultAnswer(answer)


async def authorize(state: EmulatorState, request: Request, method: ApiMethod) -> Caller:
    """Count the call (and fire its fault), then check the token as Google's front end does.

    In order: no credential → 401 ``CREDENTIALS_MISSING``; unknown, revoked or expired token →
    401 ``invalid_token``; none of the method's scopes → 403 ``insufficient_scope``.
    """
    await count_call(state, method.endpoint)
    token = bearer_token(request.headers.get("authorization"), request.query_params)
    if token is None:
        raise credentials_missing(method.service, method.rpc)
    record = state.lookup_access_token(token) if token else None
    if record is None or record.expires_at <= state.clock.now():
        raise invalid_credentials()
    if not record.scopes & method.scopes:
        raise insufficient_scope(method.service, method.rpc, method.scopes)
    return Caller(record.sub, app_of(state, record.client_id), record.client_id, record.scopes)


class GoogleApiRoute(APIRoute):
    """A route that answers :class:`GoogleApiError` in Google's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def google_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except GoogleApiError as error:
                return error.to_response()
            except FaultAnswer as fault:
                return fault.response

        return google_handler


def base_url(state: EmulatorState, request: Request) -> str:
    """The emulator's origin (configured, or as the client reached it), no trailing slash."""
    return state.origin(str(request.base_url))


def app_of(state: EmulatorState, client_id: str) -> str:
    """Who "the app" is for app-private data: the client's Cloud project.

    Google ties the app data folder and "app-created" Photos items to the project, so the iOS
    client that signs the user in and the web client the backend redeems codes with share them.
    A client the emulator does not know is its own app.
    """
    with state.lock:
        client = state.clients.get(client_id)
    return client.project_id if client is not None and client.project_id else client_id


# --------------------------------------------------------------------------------------------
# Partial responses (``fields=``)
# --------------------------------------------------------------------------------------------

#: A parsed field selection: each key maps to its sub-selection, or ``None`` for "all of it".
FieldMask = dict[str, "FieldMask | None"]

_FIELD_TOKEN = re.compile(r"\s*([A-Za-z0-9_@$.*-]+|[(),/])")


class FieldSelectionError(ValueError):
    """A ``fields=`` value that does not parse or names an unknown field."""


def parse_fields(spec: str) -> FieldMask:
    """Parse Google's ``fields`` syntax: ``a,b(c,d),e/f`` (``*`` selects everything)."""
    tokens: list[str] = []
    pos = 0
    spec = spec.strip()
    while pos < len(spec):
        match = _FIELD_TOKEN.match(spec, pos)
        if match is None:
            raise FieldSelectionError(spec)
        tokens.append(match.group(1))
        pos = match.end()
    mask, rest = _parse_list(tokens)
    if rest:
        raise FieldSelectionError(spec)
    return mask


def _parse_list(tokens: list[str]) -> tuple[FieldMask, list[str]]:
    mask: FieldMask = {}
    while True:
        path, tokens = _parse_path(tokens)
        _merge(mask, path)
        if tokens and tokens[0] == ",":
            tokens = tokens[1:]
            continue
        return mask, tokens


def _parse_path(tokens: list[str]) -> tuple[FieldMask, list[str]]:
    if not tokens or tokens[0] in "(),/":
        raise FieldSelectionError("".join(tokens))
    name, tokens = tokens[0], tokens[1:]
    if tokens and tokens[0] == "/":
        sub, tokens = _parse_path(tokens[1:])
        return {name: sub}, tokens
    if tokens and tokens[0] == "(":
        sub, tokens = _parse_list(tokens[1:])
        if not tokens or tokens[0] != ")":
            raise FieldSelectionError("unbalanced parentheses")
        return {name: sub}, tokens[1:]
    return {name: None}, tokens


def _merge(into: FieldMask, other: FieldMask) -> None:
    for key, sub in other.items():
        if key in into and into[key] is None:
            continue
        if sub is None or key not in into:
            into[key] = sub
        else:
            existing = into[key]
            assert existing is not None
            _merge(existing, sub)


def apply_fields(value: Any, mask: FieldMask | None) -> Any:
    """Keep only the selected members of a JSON value (lists are filtered element-wise)."""
    if mask is None or "*" in mask:
        return value
    if isinstance(value, list):
        return [apply_fields(item, mask) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: apply_fields(value[key], sub) for key, sub in mask.items() if key in value}
