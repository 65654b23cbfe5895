"""The grant life cycle as Google runs it: consent and codes here; clients and users in
:mod:`.accounts`, the token endpoint's grants in :mod:`.token_grants`, revocation in
:mod:`.revocation`, all importable from here.

Every function takes the :class:`EmulatorState` and runs its whole check-and-change under
``state.lock`` without awaiting. Failures are :class:`GoogleOAuthError` carrying Google's exact
status and body (google-protocol.md §10).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.oauth.accounts import (
    client_document,
    create_client,
    create_user,
    get_or_create_user,
)
from grantkeeper.emulator.oauth.models import AuthCode, Client, User
from grantkeeper.emulator.oauth.revocation import change_password, revoke_token, revoke_user
from grantkeeper.emulator.oauth.rules import new_code
from grantkeeper.emulator.oauth.token_grants import authenticate_client, exchange_code, refresh
from grantkeeper.emulator.state import EmulatorState

__all__ = [
    "ConsentRequest",
    "GoogleOAuthError",
    "authenticate_client",
    "change_password",
    "client_document",
    "create_client",
    "create_user",
    "exchange_code",
    "get_or_create_user",
    "issue_code",
    "refresh",
    "revoke_token",
    "revoke_user",
]


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
