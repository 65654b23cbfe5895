"""The emulator's OAuth clients and test accounts, and the ``client_secret.json`` it hands out."""

from __future__ import annotations

import secrets
from typing import Any

from grantkeeper.emulator.oauth.models import Client, ClientType, User
from grantkeeper.emulator.oauth.rules import new_client_id, new_client_secret, new_sub
from grantkeeper.emulator.state import EmulatorState


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
    """A test account; the name is made from the email when not given.

    A consumer account unless ``hd`` is given: Google sets ``hd`` only for Workspace
    (hosted-domain) accounts (google-protocol.md §4.2), and an email on a company's domain
    can be a personal Google account too."""
    local = email.split("@", 1)[0]
    parts = [p.capitalize() for p in local.replace("_", ".").split(".") if p] or ["Test"]
    given = given_name or parts[0]
    family = family_name or (" ".join(parts[1:]) if len(parts) > 1 else "User")
    user = User(
        sub=sub or new_sub(),
        email=email,
        name=name or f"{given} {family}",
        given_name=given,
        family_name=family,
        picture=picture or f"https://lh3.googleusercontent.com/a/{secrets.token_urlsafe(24)}=s96-c",
        locale=locale,
        hd=hd or None,
        email_verified=email_verified,
    )
    with state.lock:
        if state.user_by_email(email) is not None and sub is None:
            raise ValueError(f"a user with email {email} exists")
        return state.add_user(user)


def get_or_create_user(state: EmulatorState, email: str, *, hd: str | None = None) -> User:
    """The user with ``email``; a new one is made a Workspace account of ``hd`` if given."""
    with state.lock:
        return state.user_by_email(email) or create_user(state, email, hd=hd)
