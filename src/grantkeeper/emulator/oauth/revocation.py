"""How a grant ends: ``POST /revoke``, the user removing the app, a password change."""

from __future__ import annotations

from grantkeeper.emulator.errors import GoogleOAuthError
from grantkeeper.emulator.oauth.models import AccessTokenRecord, AuthCode, RefreshTokenRecord
from grantkeeper.emulator.oauth.rules import is_gmail_scope, refresh_token_problem
from grantkeeper.emulator.state import EmulatorState


def linked_clients(state: EmulatorState, sub: str, client_id: str) -> set[str]:
    """``client_id`` and every client that redeemed codes ``client_id`` asked for (its
    ``azp``): an iOS or Android app's grants and consent are kept under the server's web
    client, so the app's removal has to reach them there."""
    linked = {client_id}
    records: list[AuthCode | AccessTokenRecord | RefreshTokenRecord] = [
        *state.codes.values(),
        *state.access_tokens.values(),
        *state.refresh_tokens.values(),
    ]
    linked.update(r.client_id for r in records if r.sub == sub and r.azp == client_id)
    return linked


def end_grant(state: EmulatorState, sub: str, client_id: str | None) -> int:
    """Kill every token of (user, client) (or of every client) and forget the consent, so
    the next sign-in shows the consent screen and returns a refresh token (§3.3). The caller
    holds ``state.lock``."""
    clients = None if client_id is None else linked_clients(state, sub, client_id)

    def hit(record: AccessTokenRecord | RefreshTokenRecord) -> bool:
        return record.sub == sub and (
            clients is None or record.client_id in clients or record.azp in clients
        )

    revoked = 0
    for record in state.refresh_tokens.values():
        if hit(record) and not record.revoked:
            record.revoked = True
            revoked += 1
    for token in [t for t, r in state.access_tokens.items() if hit(r)]:
        del state.access_tokens[token]
    for key in [k for k in state.consents if k[0] == sub and (clients is None or k[1] in clients)]:
        del state.consents[key]
    return revoked


def revoke_token(state: EmulatorState, token: str) -> None:
    """``POST /revoke``: an access or refresh token ends the user's whole grant to that client
    (Google: revoking an access token revokes its refresh token too)."""
    now = state.clock.now()
    with state.lock:
        access = state.access_tokens.get(token)
        if access is not None and now < access.expires_at:
            end_grant(state, access.sub, access.client_id)
            return
        record = state.refresh_tokens.get(token)
        if record is not None and refresh_token_problem(record, now, state.settings) is None:
            end_grant(state, record.sub, record.client_id)
            return
    raise GoogleOAuthError(400, "invalid_token", state.settings.revoke_error_description)


def revoke_user(state: EmulatorState, sub: str, client_id: str | None = None) -> int:
    """The user removes the app (or every app) in their Google Account."""
    with state.lock:
        if sub not in state.users:
            raise KeyError(sub)
        return end_grant(state, sub, client_id)


def revoke_one_refresh_token(state: EmulatorState, token: str) -> bool:
    """RISC ``token-revoked``: this refresh token and its access tokens die, and the consent
    of its client is forgotten (Google: "re-consent next time", §6.4). Other refresh tokens
    of the grant live on. ``False`` when the token is unknown."""
    with state.lock:
        record = state.refresh_tokens.get(token)
        if record is None:
            return False
        record.revoked = True
        for value in [t for t, r in state.access_tokens.items() if r.refresh_token_id == record.id]:
            del state.access_tokens[value]
        state.consents.pop((record.sub, record.client_id), None)
        return True


def set_account_disabled(state: EmulatorState, sub: str, disabled: bool) -> None:
    """RISC ``account-disabled``/``account-purged`` (and ``account-enabled``): while disabled,
    the account's refresh tokens answer ``invalid_grant`` and its access tokens are refused."""
    with state.lock:
        if sub not in state.users:
            raise KeyError(sub)
        state.users[sub].disabled = disabled


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
