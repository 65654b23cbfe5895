"""What the app must do to get a dead or narrow grant back, per platform (a pure decision).

A grant that lacks scopes needs incremental authorization; a revoked grant (or one without a
refresh token) needs a sign-in that shows consent again so that Google issues a refresh token
(google-protocol.md: a refresh token comes only on first consent or with ``prompt=consent``).
iOS (GIDSignIn ``addScopes`` / ``additionalScopes``) and Android (the authorization request's
scopes with offline access for the server client) get the scopes to ask for; the web gets a
ready authorization URL with ``include_granted_scopes=true`` and ``access_type=offline``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode


def reconsent(
    *,
    sub: str,
    scopes: list[str],
    needs_refresh_token: bool,
    authorization_endpoint: str | None,
    client_id: str,
    web_redirect_uri: str,
) -> dict[str, Any]:
    """The ``reconsent`` member of an ``insufficient_scope`` or ``grant_revoked`` problem.

    ``scopes`` are the scopes to ask for: the missing ones, or (for a dead grant) all it held.
    """
    asked = sorted(set(scopes))
    answer: dict[str, Any] = {
        "scopes": asked,
        "refresh_token_needed": needs_refresh_token,
        "ios": {
            "additional_scopes": asked,
            "how": (
                "GIDSignIn.sharedInstance.signIn(withPresenting:hint:additionalScopes:) — or "
                "currentUser.addScopes(_:presenting:) for a signed-in user — with "
                "GIDServerClientID set; POST the new serverAuthCode to /v1/google/signin."
            ),
        },
        "android": {
            "scopes": asked,
            "how": (
                "Request these scopes with offline access for the server client id "
                "(AuthorizationRequest.requestOfflineAccess(serverClientId"
                + (", forceCodeForRefreshToken = true" if needs_refresh_token else "")
                + ")); POST the new server auth code to /v1/google/signin."
            ),
        },
    }
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": " ".join(asked),
        "include_granted_scopes": "true",
        "access_type": "offline",
        "login_hint": sub,
    }
    if needs_refresh_token:
        params["prompt"] = "consent"
    web: dict[str, Any] = {}
    if web_redirect_uri != "postmessage":
        params["redirect_uri"] = web_redirect_uri
    if authorization_endpoint:
        web["authorization_url"] = authorization_endpoint + "?" + urlencode(params)
    web["how"] = (
        "Send the browser to authorization_url (add your own state) and POST the code it "
        "returns to /v1/google/signin with platform=web."
        if web_redirect_uri != "postmessage"
        else "Google Identity Services: initCodeClient with these scopes, "
        "include_granted_scopes: true"
        + (", prompt: 'consent'" if needs_refresh_token else "")
        + "; POST the code to /v1/google/signin with platform=web (authorization_url shows "
        "the same request's parameters)."
    )
    answer["web"] = web
    return answer
