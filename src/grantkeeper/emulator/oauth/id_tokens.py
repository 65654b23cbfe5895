"""ID tokens with Google's claims, and the deliberately broken ones ID-token faults ask for."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from grantkeeper.emulator.config import EmulatorSettings
from grantkeeper.emulator.oauth.keys import KeyRing, generate_key, new_kid
from grantkeeper.emulator.oauth.models import User
from grantkeeper.emulator.oauth.rules import EMAIL_SCOPE, PROFILE_SCOPE, at_hash


def id_token_claims(
    *,
    user: User,
    issuer: str,
    aud: str,
    azp: str,
    scopes: frozenset[str],
    now: datetime,
    settings: EmulatorSettings,
    access_token: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The payload Google puts in an ID token for these scopes (google-protocol.md §4.2)."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {"iss": issuer, "azp": azp, "aud": aud, "sub": user.sub}
    if user.hd:
        claims["hd"] = user.hd
    if EMAIL_SCOPE in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token)
    if nonce:
        claims["nonce"] = nonce
    if PROFILE_SCOPE in scopes:
        claims["name"] = user.name
        claims["picture"] = user.picture
        claims["given_name"] = user.given_name
        claims["family_name"] = user.family_name
        if settings.include_locale_claim:
            claims["locale"] = user.locale
    claims["iat"] = iat
    claims["exp"] = iat + settings.id_token_ttl
    return claims


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_id_token(keys: KeyRing, claims: dict[str, Any], fault: str | None = None) -> str:
    """Sign ``claims`` with the current key, or break the token the way ``fault`` names."""
    claims = dict(claims)
    lifetime = claims["exp"] - claims["iat"]
    if fault == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if fault == "wrong_iss":
        claims["iss"] = "https://accounts.google.com.evil.example"
    elif fault == "wrong_aud":
        claims["aud"] = "000000000000-wrongaudience.apps.googleusercontent.com"
    elif fault == "wrong_azp":
        claims["azp"] = "000000000000-wrongpresenter.apps.googleusercontent.com"
    elif fault == "expired":
        claims["iat"] -= 2 * lifetime
        claims["exp"] = claims["iat"] + lifetime
    elif fault == "iat_future":
        claims["iat"] += lifetime
        claims["exp"] = claims["iat"] + lifetime
    if fault in ("wrong_key", "unknown_kid"):
        current = keys.signing_key()
        # A key nobody publishes; "wrong_key" borrows a published kid so only the signature fails.
        rogue = generate_key(current.created_at, kid=current.kid if fault == "wrong_key" else None)
        if fault == "unknown_kid":
            rogue.kid = new_kid()
        return keys.sign(claims, key=rogue)
    return keys.sign(claims)
