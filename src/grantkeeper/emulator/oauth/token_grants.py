"""The token endpoint's grants: client authentication, ``authorization_code`` and
``refresh_token``, and the minting of access, ID and refresh tokens.

Each grant runs its whole check-and-change under ``state.lock`` without awaiting, so two
concurrent exchanges of one code cannot both succeed; the checks run in the order Google's
answers reveal (google-protocol.md §10).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.oauth.id_tokens import id_token_claims, sign_id_token
from grantkeeper.emulator.oauth.models import (
    AccessTokenRecord,
    AuthCode,
    Client,
    RefreshTokenRecord,
    User,
)
from grantkeeper.emulator.oauth.rules import (
    OPENID,
    looks_like_code,
    new_access_token,
    new_refresh_token,
    normalize_scopes,
    pkce_problem,
    refresh_token_end,
    refresh_token_problem,
    scope_string,
    split_scope,
)
from grantkeeper.emulator.state import EmulatorState


def authenticate_client(
    state: EmulatorState, client_id: str | None, client_secret: str | None
) -> Client:
    if not client_id:
        raise GoogleOAuthError(
            400, "invalid_request", "Could not determine client ID from request."
        )
    with state.lock:
        client = state.clients.get(client_id)
    if client is None:
        raise GoogleOAuthError(401, "invalid_client", "The OAuth client was not found.")
    if client.needs_secret:
        if not client_secret:
            raise GoogleOAuthError(400, "invalid_request", "client_secret is missing.")
        if not secrets.compare_digest(client_secret, client.client_secret or ""):
            raise GoogleOAuthError(401, "invalid_client", "Unauthorized")
    return client


def exchange_code(
    state: EmulatorState, client: Client, form: Mapping[str, str], issuer: str
) -> dict[str, Any]:
    """``grant_type=authorization_code``: Google's checks, in Google's order."""
    code_value = form.get("code")
    if not code_value:
        raise GoogleOAuthError(400, "invalid_request", "Missing required parameter: code")
    if not looks_like_code(code_value):
        raise GoogleOAuthError(400, "invalid_grant", "Malformed auth code.")
    now = state.clock.now()
    with state.lock:
        code = state.codes.get(code_value)
        if code is None or now >= code.expires_at or code.client_id != client.client_id:
            raise GoogleOAuthError(400, "invalid_grant", "Bad Request")
        if code.used:
            # "Code was already redeemed." (2015-2017) named reuse only (§3.6).
            raise GoogleOAuthError(400, "invalid_grant", state.settings.code_reuse_description)
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is None:
            raise GoogleOAuthError(
                400, "invalid_request", "Missing required parameter: redirect_uri"
            )
        if redirect_uri not in code.redirect_uris:
            raise GoogleOAuthError(400, "redirect_uri_mismatch", "Bad Request")
        problem = pkce_problem(
            code.code_challenge, code.code_challenge_method, form.get("code_verifier")
        )
        if problem:
            raise GoogleOAuthError(400, "invalid_grant", problem)
        code.used = True
        user = state.users[code.sub]
        response = _mint(state, user, client, code.azp, code.scopes, issuer, code.nonce, None)
        if code.issue_refresh_token:
            record = _new_refresh_token(state, user, client, code, response)
            if record.expires_at is not None and (
                record.time_limited or state.settings.report_testing_expiry
            ):
                left = int((record.expires_at - now).total_seconds()) - 1
                response["refresh_token_expires_in"] = max(left, 0)
        return _ordered(response)


def refresh(
    state: EmulatorState, client: Client, form: Mapping[str, str], issuer: str
) -> dict[str, Any]:
    """``grant_type=refresh_token``."""
    token = form.get("refresh_token")
    if not token:
        raise GoogleOAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
    now = state.clock.now()
    settings = state.settings
    with state.lock:
        record = state.refresh_tokens.get(token)
        if (
            record is None
            or refresh_token_problem(record, now, settings) is not None
            or state.users[record.sub].disabled
        ):
            raise GoogleOAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if record.client_id != client.client_id:
            raise GoogleOAuthError(
                settings.unauthorized_client_status, "unauthorized_client", "Unauthorized"
            )
        scopes = record.scopes
        if form.get("scope"):
            asked = normalize_scopes(split_scope(form["scope"]))
            if not asked <= record.scopes:
                raise GoogleOAuthError(400, "invalid_scope", settings.invalid_scope_description)
            # Down-scoping: the new access token carries only what was asked (openid stays).
            scopes = asked | (record.scopes & {OPENID})
        record.last_used_at = now
        if record.predecessor is not None:
            _retire_predecessor(state, record, token)
        state.record_refresh(record.sub)
        user = state.users[record.sub]
        response = _mint(state, user, client, record.azp, scopes, issuer, None, record.id)
        if settings.rotate_refresh_tokens:
            new_value = new_refresh_token()
            successor = replace(
                record,
                id=secrets.token_hex(8),
                issued_at=now,
                last_used_at=now,
                predecessor=token,
            )
            state.refresh_tokens[new_value] = successor
            state.refresh_tokens_by_grant.setdefault((record.sub, record.client_id), []).append(
                new_value
            )
            response["refresh_token"] = new_value
        return _ordered(response)


def _retire_predecessor(state: EmulatorState, record: RefreshTokenRecord, token: str) -> None:
    """The successor is in use: its predecessor, and any other successor minted from it by a
    client that kept retrying, stop working."""
    predecessor = record.predecessor
    record.predecessor = None
    old = state.refresh_tokens.get(predecessor) if predecessor else None
    if old is not None:
        old.revoked = True
    for value in state.refresh_tokens_by_grant.get((record.sub, record.client_id), []):
        sibling = state.refresh_tokens.get(value)
        if sibling is not None and value != token and sibling.predecessor == predecessor:
            sibling.revoked = True


def _mint(
    state: EmulatorState,
    user: User,
    client: Client,
    azp: str,
    scopes: frozenset[str],
    issuer: str,
    nonce: str | None,
    refresh_token_id: str | None,
) -> dict[str, Any]:
    now = state.clock.now()
    settings = state.settings
    access_token = new_access_token()
    state.access_tokens[access_token] = AccessTokenRecord(
        sub=user.sub,
        client_id=client.client_id,
        scopes=scopes,
        expires_at=now + timedelta(seconds=settings.access_token_ttl),
        azp=azp,
        offline=refresh_token_id is not None,
        refresh_token_id=refresh_token_id,
    )
    _prune_access_tokens(state)
    response: dict[str, Any] = {
        "access_token": access_token,
        "expires_in": settings.access_token_ttl,
        "scope": scope_string(scopes),
        "token_type": "Bearer",
    }
    if OPENID in scopes:
        claims = id_token_claims(
            user=user,
            issuer=id_token_issuer(state, issuer),
            aud=client.client_id,
            azp=azp,
            scopes=scopes,
            now=datetime.now(UTC) if settings.id_token_clock == "system" else now,
            settings=settings,
            access_token=access_token,
            nonce=nonce,
        )
        fault = state.faults.take("id_token")
        response["id_token"] = sign_id_token(state.keys, claims, fault.id_token if fault else None)
    return response


def id_token_issuer(state: EmulatorState, issuer: str) -> str:
    """``iss`` of the next ID token: Google signs with ``https://accounts.google.com`` or the bare
    ``accounts.google.com``, and verifiers must take both (``id_token_iss_form``)."""
    bare = issuer.removeprefix("https://")
    form = state.settings.id_token_iss_form
    if form == "bare":
        return bare
    if form == "alternate":
        with state.lock:
            state.minted_id_tokens += 1
            return bare if state.minted_id_tokens % 2 == 0 else issuer
    return issuer


def _new_refresh_token(
    state: EmulatorState, user: User, client: Client, code: AuthCode, response: dict[str, Any]
) -> RefreshTokenRecord:
    now = state.clock.now()
    settings = state.settings
    expires_at, time_limited = refresh_token_end(
        now, code.scopes, settings, code.time_limited_seconds
    )
    record = RefreshTokenRecord(
        id=secrets.token_hex(8),
        sub=user.sub,
        client_id=client.client_id,
        azp=code.azp,
        scopes=code.scopes,
        issued_at=now,
        last_used_at=now,
        expires_at=expires_at,
        time_limited=time_limited,
    )
    value = new_refresh_token()
    grant = state.refresh_tokens_by_grant.setdefault((user.sub, client.client_id), [])
    live = [
        t for t in grant if refresh_token_problem(state.refresh_tokens[t], now, settings) is None
    ]
    # Google: beyond the limit "creating a new refresh token automatically invalidates the oldest
    # refresh token without warning".
    excess = max(len(live) + 1 - settings.max_refresh_tokens, 0)
    for oldest in live[:excess]:
        state.refresh_tokens[oldest].revoked = True
    grant[:] = [*live[excess:], value]
    state.refresh_tokens[value] = record
    # The access token minted with the code belongs to this refresh token's grant.
    access = state.access_tokens[response["access_token"]]
    state.access_tokens[response["access_token"]] = replace(
        access, offline=True, refresh_token_id=record.id
    )
    response["refresh_token"] = value
    return record


def _prune_access_tokens(state: EmulatorState) -> None:
    """Forget expired access tokens now and then, so a long benchmark does not grow memory."""
    if len(state.access_tokens) % 1024 == 0:
        now = state.clock.now()
        for token in [t for t, r in state.access_tokens.items() if r.expires_at <= now]:
            del state.access_tokens[token]


def _ordered(response: dict[str, Any]) -> dict[str, Any]:
    order = [
        "access_token",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
        "scope",
        "token_type",
        "id_token",
    ]
    return {k: response[k] for k in order if k in response}
