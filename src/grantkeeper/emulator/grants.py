"""The grant life cycle as Google runs it: consent, codes, token minting, refresh, revocation.

Every function takes the :class:`EmulatorState` and runs its whole check-and-change under
``state.lock`` without awaiting, so two concurrent exchanges of one code cannot both succeed.
Failures are :class:`GoogleOAuthError` carrying Google's exact status and body; the checks run
in the order Google's answers reveal (google-protocol.md §10).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from grantkeeper.emulator.id_tokens import id_token_claims, sign_id_token
from grantkeeper.emulator.models import (
    AccessTokenRecord,
    AuthCode,
    Client,
    ClientType,
    RefreshTokenRecord,
    User,
)
from grantkeeper.emulator.rules import (
    OPENID,
    is_gmail_scope,
    looks_like_code,
    new_access_token,
    new_client_id,
    new_client_secret,
    new_code,
    new_refresh_token,
    new_sub,
    normalize_scopes,
    pkce_problem,
    refresh_token_end,
    refresh_token_problem,
    scope_string,
    split_scope,
)
from grantkeeper.emulator.state import EmulatorState

SERVER_AUTH_CODE_REDIRECTS = frozenset({"", "postmessage"})
"""Native Google Sign-In codes are redeemed with ``''`` (Java sample) or ``'postmessage'``
(oauth2client's default)."""


class GoogleOAuthError(Exception):
    """An answer of Google's OAuth endpoints: HTTP status plus ``{"error", "error_description"}``.

    This is the emulated provider's wire protocol, not a grantkeeper error; the description is
    Google's text and never contains a token or code."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body


# -- clients and users ----------------------------------------------------------------------------


def create_client(
    state: EmulatorState,
    type: ClientType = "web",
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: list[str] | None = None,
    javascript_origins: list[str] | None = None,
    project_id: str = "grantkeeper-emulator",
    project_number: str | None = None,
) -> Client:
    number = project_number or "".join(secrets.choice("0123456789") for _ in range(12))
    # Only confidential clients have secrets; iOS and Android clients never do.
    secret = (client_secret or new_client_secret()) if type in ("web", "installed") else None
    if redirect_uris is None:
        redirect_uris = ["http://localhost"] if type == "installed" else []
    client = Client(
        client_id=client_id or new_client_id(number),
        type=type,
        client_secret=secret,
        project_id=project_id,
        redirect_uris=list(redirect_uris),
        javascript_origins=list(javascript_origins or []),
    )
    return state.add_client(client)


def client_document(client: Client, origin: str) -> dict[str, Any]:
    """For web and installed clients Google's ``client_secret.json`` shape, pointing at the
    emulator; for iOS and Android clients what the console shows (id and type)."""
    if client.type in ("ios", "android"):
        return {"client_id": client.client_id, "type": client.type, "project_id": client.project_id}
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "project_id": client.project_id,
        "auth_uri": f"{origin}/o/oauth2/auth",
        "token_uri": f"{origin}/token",
        "auth_provider_x509_cert_url": f"{origin}/oauth2/v1/certs",
        "client_secret": client.client_secret,
        "redirect_uris": client.redirect_uris,
    }
    body["revoke_uri"] = f"{origin}/revoke"
    if client.type == "web":
        body["javascript_origins"] = client.javascript_origins
    return {client.type: body}


def create_user(
    state: EmulatorState,
    email: str,
    *,
    sub: str | None = None,
    name: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    picture: str | None = None,
    locale: str = "en",
    hd: str | None = None,
    email_verified: bool = True,
) -> User:
    """A test account; the name is made from the email when not given."""
    local = email.split("@", 1)[0]
    parts = [p.capitalize() for p in local.replace("_", ".").split(".") if p] or ["Test"]
    given = given_name or parts[0]
    family = family_name or (" ".join(parts[1:]) if len(parts) > 1 else "User")
    domain = email.rsplit("@", 1)[-1].lower()
    user = User(
        sub=sub or new_sub(),
        email=email,
        name=name or f"{given} {family}",
        given_name=given,
        family_name=family,
        picture=picture or f"https://lh3.googleusercontent.com/a/{secrets.token_urlsafe(24)}=s96-c",
        locale=locale,
        hd=hd if hd is not None else (domain if domain not in ("gmail.com",) else None),
        email_verified=email_verified,
    )
    with state.lock:
        if state.user_by_email(email) is not None and sub is None:
            raise ValueError(f"a user with email {email} exists")
        return state.add_user(user)


def get_or_create_user(state: EmulatorState, email: str) -> User:
    with state.lock:
        return state.user_by_email(email) or create_user(state, email)


# -- consent and codes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRequest:
    """What a consent (browser page or ``GIDSignIn``) asks for, already validated."""

    user: User
    client: Client
    """The client that redeems the code (``aud``)."""
    azp: str
    scopes: frozenset[str]
    redirect_uris: frozenset[str]
    offline: bool
    force_consent: bool
    include_granted_scopes: bool
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    time_limited_seconds: int | None = None


def issue_code(state: EmulatorState, request: ConsentRequest) -> AuthCode:
    """Record the consent and hand out a one-time code.

    A refresh token will come with the code when the user saw a consent screen: the scopes are
    new for this (user, client), or ``prompt=consent`` forced it. Installed and native clients
    always get one, as Google documents."""
    now = state.clock.now()
    with state.lock:
        key = (request.user.sub, request.client.client_id)
        prior = state.consents.get(key, frozenset())
        granted = request.scopes | prior if request.include_granted_scopes else request.scopes
        consent_shown = request.force_consent or not request.scopes <= prior
        state.consents[key] = prior | request.scopes
        always = request.client.type in ("installed", "ios", "android")
        code = AuthCode(
            code=new_code(),
            sub=request.user.sub,
            client_id=request.client.client_id,
            azp=request.azp,
            scopes=granted,
            redirect_uris=request.redirect_uris,
            issued_at=now,
            expires_at=now + timedelta(seconds=state.settings.code_ttl),
            offline=request.offline,
            issue_refresh_token=request.offline and (consent_shown or always),
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            time_limited_seconds=request.time_limited_seconds,
        )
        state.codes[code.code] = code
        return code


# -- the token endpoint ---------------------------------------------------------------------------


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
        if (
            code is None
            or code.used
            or now >= code.expires_at
            or code.client_id != client.client_id
        ):
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
        if record is None or refresh_token_problem(record, now, settings) is not None:
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
            issuer=issuer,
            aud=client.client_id,
            azp=azp,
            scopes=scopes,
            now=now,
            settings=settings,
            access_token=access_token,
            nonce=nonce,
        )
        fault = state.faults.take("id_token")
        response["id_token"] = sign_id_token(state.keys, claims, fault.id_token if fault else None)
    return response


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


# -- revocation -----------------------------------------------------------------------------------


def _end_grant(state: EmulatorState, sub: str, client_id: str | None) -> int:
    """Kill every token of (user, client) (or of every client) and forget the consent."""
    revoked = 0
    for record in state.refresh_tokens.values():
        if (
            record.sub == sub
            and not record.revoked
            and client_id in (None, record.client_id, record.azp)
        ):
            record.revoked = True
            revoked += 1
    for token in [
        t
        for t, r in state.access_tokens.items()
        if r.sub == sub and client_id in (None, r.client_id, r.azp)
    ]:
        del state.access_tokens[token]
    for key in [k for k in state.consents if k[0] == sub and client_id in (None, k[1])]:
        del state.consents[key]
    return revoked


def revoke_token(state: EmulatorState, token: str) -> None:
    """``POST /revoke``: an access or refresh token ends the user's whole grant to that client
    (Google: revoking an access token revokes its refresh token too)."""
    now = state.clock.now()
    with state.lock:
        access = state.access_tokens.get(token)
        if access is not None and now < access.expires_at:
            _end_grant(state, access.sub, access.client_id)
            return
        record = state.refresh_tokens.get(token)
        if record is not None and refresh_token_problem(record, now, state.settings) is None:
            _end_grant(state, record.sub, record.client_id)
            return
    raise GoogleOAuthError(400, "invalid_token", state.settings.revoke_error_description)


def revoke_user(state: EmulatorState, sub: str, client_id: str | None = None) -> int:
    """The user removes the app (or every app) in their Google Account."""
    with state.lock:
        if sub not in state.users:
            raise KeyError(sub)
        return _end_grant(state, sub, client_id)


def change_password(state: EmulatorState, sub: str) -> int:
    """A password change revokes the refresh tokens that carry Gmail scopes."""
    with state.lock:
        user = state.users[sub]
        user.password_version += 1
        revoked = 0
        for record in state.refresh_tokens.values():
            if record.sub == sub and not record.revoked and any(map(is_gmail_scope, record.scopes)):
                record.revoked = True
                revoked += 1
                for token in [
                    t for t, r in state.access_tokens.items() if r.refresh_token_id == record.id
                ]:
                    del state.access_tokens[token]
        return revoked
