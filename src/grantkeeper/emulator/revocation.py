"""How a grant ends: ``POST /revoke``, the user removing the app, a password change."""

from __future__ import annotations

from grantkeeper.emulator.google_oauth_error import GoogleOAuthError
from grantkeeper.emulator.rules import is_gmail_scope, refresh_token_problem
from grantkeeper.emulator.state import EmulatorState


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
