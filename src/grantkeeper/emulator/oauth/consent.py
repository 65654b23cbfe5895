"""``/o/oauth2/v2/auth``: the browser consent flow as a plain HTML form.

``GET`` validates the request as Google does (a bad client or redirect URI gets an error page,
never a redirect) and shows an account chooser with the requested scopes; ``POST`` records the
consent and redirects back with ``code`` and ``state`` (or ``error=access_denied``). The form is
plain HTML so tests drive it with an HTTP client, and a person can click through it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from grantkeeper.emulator.oauth import grants
from grantkeeper.emulator.oauth.grants import ConsentRequest
from grantkeeper.emulator.oauth.http import fault_gate, read_form
from grantkeeper.emulator.oauth.models import Client, User
from grantkeeper.emulator.oauth.rules import (
    BASIC_SCOPES,
    invalid_scope_message,
    normalize_scopes,
    scope_string,
    split_scope,
)
from grantkeeper.emulator.state import EmulatorState

AUTH_PATHS = ("/o/oauth2/v2/auth", "/o/oauth2/auth")
_MAX_PENDING = 10_000

_templates = Environment(
    loader=PackageLoader("grantkeeper.emulator.oauth", "templates"),
    autoescape=select_autoescape(["html"]),
)


class _PageError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status, self.error, self.description = status, error, description


def _error_page(error: _PageError) -> HTMLResponse:
    html = _templates.get_template("error.html").render(
        status=error.status, error=error.error, description=error.description
    )
    return HTMLResponse(html, status_code=error.status)


def redirect_allowed(client: Client, redirect_uri: str) -> bool:
    """Registered URIs match exactly; desktop clients may use any loopback port, native clients
    their reversed-client-id scheme, as Google allows."""
    if redirect_uri in client.redirect_uris:
        return True
    parts = urlsplit(redirect_uri)
    if client.type == "installed":
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")
    if client.type in ("ios", "android"):
        return parts.scheme.startswith("com.googleusercontent.apps.")
    return False


def _validate(state: EmulatorState, params: Mapping[str, str]) -> Client:
    client_id = params.get("client_id", "")
    client = state.clients.get(client_id) if client_id else None
    if client is None:
        raise _PageError(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not redirect_allowed(client, redirect_uri):
        raise _PageError(
            400,
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
            "policy. Register the redirect URI with the client (POST /emulator/clients).",
        )
    if not split_scope(params.get("scope")):
        raise _PageError(400, "invalid_request", "Missing required parameter: scope")
    if (problem := invalid_scope_message(split_scope(params.get("scope")))) is not None:
        raise _PageError(400, "invalid_scope", problem)
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in (None, "", "plain", "S256"):
        raise _PageError(400, "invalid_request", "Invalid code_challenge_method.")
    return client


def _redirect(redirect_uri: str, params: Mapping[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


def _time_limit(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _grant(
    state: EmulatorState,
    client: Client,
    user: User,
    params: Mapping[str, str],
    scopes: frozenset[str],
    time_limited: int | None,
) -> RedirectResponse:
    redirect_uri = params["redirect_uri"]
    prompt = params.get("prompt", "")
    code = grants.issue_code(
        state,
        ConsentRequest(
            user=user,
            client=client,
            azp=client.client_id,
            scopes=scopes,
            redirect_uris=frozenset({redirect_uri}),
            offline=params.get("access_type") == "offline" or client.type != "web",
            force_consent="consent" in prompt.split(),
            include_granted_scopes=params.get("include_granted_scopes") == "true",
            nonce=params.get("nonce") or None,
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=(
                (params.get("code_challenge_method") or "plain")
                if params.get("code_challenge")
                else None
            ),
            time_limited_seconds=time_limited,
        ),
    )
    return _redirect(
        redirect_uri,
        {
            "state": params.get("state"),
            "code": code.code,
            "scope": scope_string(code.scopes),
            "authuser": "0",
            "prompt": "none" if prompt == "none" else "consent",
        },
    )


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def show(request: Request) -> Response:
        state.record_call("auth")
        if (faulted := await fault_gate(state, "auth")) is not None:
            return faulted
        params = dict(request.query_params)
        try:
            client = _validate(state, params)
        except _PageError as error:
            return _error_page(error)
        if params.get("response_type", "code") != "code":
            return _redirect(
                params["redirect_uri"],
                {"error": "unsupported_response_type", "state": params.get("state")},
            )
        scopes = normalize_scopes(split_scope(params["scope"]))
        hinted = state.user_by_email(params.get("login_hint", ""))
        if params.get("prompt") == "none":
            # No page may be shown: succeed only for a known user who already consented.
            prior = state.consents.get((hinted.sub, client.client_id)) if hinted else None
            if hinted is None or prior is None or not scopes <= prior:
                reason = "login_required" if hinted is None else "consent_required"
                return _redirect(
                    params["redirect_uri"], {"error": reason, "state": params.get("state")}
                )
            return _grant(state, client, hinted, params, scopes, None)
        request_id = secrets.token_urlsafe(16)
        with state.lock:
            if len(state.pending_authorizations) >= _MAX_PENDING:
                state.pending_authorizations.pop(next(iter(state.pending_authorizations)))
            state.pending_authorizations[request_id] = params
            users = sorted(state.users.values(), key=lambda u: u.email)
        login_hint = params.get("login_hint", "")
        html = _templates.get_template("consent.html").render(
            action=request.url.path,
            request_id=request_id,
            client_id=client.client_id,
            users=users,
            selected=hinted.email if hinted else "",
            new_email="" if hinted else login_hint,
            basic_scopes=sorted(scopes & BASIC_SCOPES),
            optional_scopes=sorted(scopes - BASIC_SCOPES),
        )
        return HTMLResponse(html)

    async def submit(request: Request) -> Response:
        state.record_call("auth")
        form = await read_form(request)
        with state.lock:
            params = state.pending_authorizations.pop(form.get("request_id", ""), None)
        if params is None:
            return _error_page(
                _PageError(400, "invalid_request", "This sign-in request expired; start again.")
            )
        client = state.clients[params["client_id"]]
        if form.get("action") != "allow":
            return _redirect(
                params["redirect_uri"], {"error": "access_denied", "state": params.get("state")}
            )
        email = form.get("email") or form.get("new_email", "").strip()
        if "@" not in email:
            return _error_page(_PageError(400, "invalid_request", "Choose or enter an account."))
        user = grants.get_or_create_user(state, email, hd=form.get("new_hd", "").strip() or None)
        requested = normalize_scopes(split_scope(params["scope"]))
        # Only non-basic scopes have a checkbox; the ones left ticked are granted.
        ticked = set(_all_values(await request.body(), "scope"))
        scopes = (requested & BASIC_SCOPES) | frozenset(s for s in requested if s in ticked)
        return _grant(
            state, client, user, params, scopes, _time_limit(form.get("time_limited_seconds"))
        )

    for path in AUTH_PATHS:
        router.add_api_route(path, show, methods=["GET"])
        router.add_api_route(path, submit, methods=["POST"])
    return router


def _all_values(body: bytes, name: str) -> list[str]:
    return [v for k, v in parse_qsl(body.decode("utf-8", "replace")) if k == name]
