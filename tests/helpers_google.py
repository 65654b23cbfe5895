"""A signed-in user with a real access token, made as the app and backend of Google's guide do.

GIDSignIn hands the iOS app a server auth code; the backend redeems it with the web client's
secret at the emulator's ``POST /token`` (``redirect_uri`` empty). The token carries exactly
the scopes consented to, so the APIs see what a real token would show them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from grantkeeper.emulator import EmulatorHandle


@dataclass(frozen=True)
class Grant:
    token: str
    sub: str
    email: str
    client_id: str
    """The web client that redeemed the code (the backend)."""
    ios_client_id: str
    """The iOS client that asked for the code (same project as the web client)."""


def backend_sign_in(
    server: EmulatorHandle,
    scopes: Iterable[str],
    *,
    project: str | None = None,
    email: str | None = None,
) -> Grant:
    """A fresh web and iOS client (in ``project``, else the emulator's default project) and
    a token for ``email``, or for a new user when no email is given."""
    control = server.control
    project_opts: dict[str, Any] = {} if project is None else {"project_id": project}
    web = control.create_client("web", **project_opts)["web"]
    ios = control.create_client("ios", **project_opts)
    if email is None:
        email = f"user{len(server.state.users)}@example.com"
        control.create_user(email)
    code = control.server_auth_code(ios["client_id"], web["client_id"], email, sorted(scopes))
    answer = httpx.post(
        server.base_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": web["client_id"],
            "client_secret": web["client_secret"],
            "redirect_uri": "",
        },
    )
    assert answer.status_code == 200, answer.text
    user = server.state.user_by_email(email)
    assert user is not None
    token = answer.json()["access_token"]
    return Grant(token, user.sub, email, web["client_id"], ios["client_id"])
