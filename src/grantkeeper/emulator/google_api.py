"""What every emulated Google API shares: bearer-token and scope checks, the caller, ``fields=``.

Google's API front end answers every API the same way when a token is missing, bad, expired or
short of a scope, so Drive and Photos both check callers here (the envelopes are in
:mod:`grantkeeper.emulator.errors`).

Routers use :class:`GoogleApiRoute` as their ``route_class``: any :class:`GoogleApiError` raised
by a handler or a dependency becomes Google's envelope instead of FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from grantkeeper.emulator.errors import (
    GoogleApiError,
    credentials_missing,
    fault_body,
    insufficient_scope,
    invalid_credentials,
    without_detail,
)
from grantkeeper.emulator.faults import fault_response
from grantkeeper.emulator.state import EmulatorState

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
    bare_errors: bool = False  # errors without errors[]/details (Photos Library)


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
        answer = await fault_response(fault, fault_body(fault.status or 500))
        if answer is not None:
            raise FaultAnswer(answer)


async def authorize(state: EmulatorState, request: Request, method: ApiMethod) -> Caller:
    """Count the call (and fire its fault), then check the token as Google's front end does.

    In order: no credential → 401 ``CREDENTIALS_MISSING``; unknown, revoked or expired token →
    401 ``invalid_token``; none of the method's scopes → 403 ``insufficient_scope``.
    """
    await count_call(state, method.endpoint)
    try:
        token = bearer_token(request.headers.get("authorization"), request.query_params)
        if token is None:
            raise credentials_missing(method.service, method.rpc)
        record = state.lookup_access_token(token) if token else None
        if record is None or record.expires_at <= state.clock.now():
            raise invalid_credentials()
        if not record.scopes & method.scopes:
            raise insufficient_scope(method.service, method.rpc, method.scopes)
    except GoogleApiError as error:
        raise without_detail(error) if method.bare_errors else error from None
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
