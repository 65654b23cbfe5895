"""Security Event Token validation (google-protocol.md §6.3, RFC 8417, RFC 8935). Pure.

Google's receiver checklist: take ``kid`` from the header and find it in the RISC
``jwks_uri``; verify the RS256 signature; ``aud`` must be one of the app's client ids and
``iss`` must equal the RISC discovery ``issuer``. **No** ``exp`` check: SETs "represent
historical events and as such, don't expire". We also require ``jti`` (the de-duplication key)
and ``iat``.

The header is read by the ID-token verifier's :func:`~grantkeeper.oauth.id_token.read_header`
(size limit, ``alg`` exactly RS256 so ``none`` and HMAC-with-the-public-key are refused before
any key lookup, no ``crit``, a ``kid``), so both kinds of Google JWT pass the same gate.

Failures raise :class:`~grantkeeper.errors.InvalidSecurityEvent` with RFC 8935 §2.4's ``err``
code: ``invalid_request`` (malformed), ``invalid_key`` (unknown key or bad signature),
``invalid_issuer``, ``invalid_audience``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from grantkeeper import untrusted_json
from grantkeeper.errors import InvalidSecurityEvent, UntrustedIdToken
from grantkeeper.oauth.id_token import ALGORITHM, read_header

MAX_JTI_LENGTH = 255


@dataclass(frozen=True, slots=True)
class VerifiedSet:
    """A SET whose signature and claims were checked."""

    jti: str
    issuer: str
    audience: str
    """The one of our client ids the SET was addressed to."""
    issued_at: int
    claims: Mapping[str, Any] = field(repr=False)


def read_kid(token: str) -> str:
    """The header's ``kid`` after the header checks; raises :class:`InvalidSecurityEvent`."""
    try:
        return read_header(token).kid
    except UntrustedIdToken as error:
        raise InvalidSecurityEvent(
            "invalid_request", "The token's header is not acceptable: " + _as_set(error.reason)
        ) from None


def verify_set(token: str, key: RSAKey, *, issuer: str, audiences: Collection[str]) -> VerifiedSet:
    """Verify the signature with ``key`` (the RISC JWKS key for the header's ``kid``) and the
    claims; ``issuer`` is the RISC discovery ``issuer``, ``audiences`` our client ids."""
    kid = read_kid(token)
    if key.kid is not None and key.kid != kid:
        raise InvalidSecurityEvent("invalid_key", "The key does not match the token's kid.")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
    except RecursionError:
        raise InvalidSecurityEvent("invalid_request", "The token is nested too deeply.") from None
    except (JoseError, ValueError, TypeError):
        raise InvalidSecurityEvent(
            "invalid_key", "The token's signature does not verify with the issuer's key."
        ) from None
    try:
        untrusted_json.check(claims)
    except untrusted_json.UnsafeJson as error:
        raise InvalidSecurityEvent("invalid_request", f"The token's claims are {error}.") from None
    found_iss = claims.get("iss")
    if found_iss != issuer:
        raise InvalidSecurityEvent(
            "invalid_issuer", f"The token's issuer {str(found_iss)[:100]!r} is not {issuer!r}."
        )
    audience = _our_audience(claims.get("aud"), audiences)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidSecurityEvent("invalid_request", "The token has no usable 'jti'.")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidSecurityEvent("invalid_request", "The token has no numeric 'iat'.")
    return VerifiedSet(
        jti=jti, issuer=issuer, audience=audience, issued_at=int(iat), claims=dict(claims)
    )


def _our_audience(aud: Any, audiences: Collection[str]) -> str:
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    for value in values:
        if isinstance(value, str) and value in audiences:
            return value
    raise InvalidSecurityEvent(
        "invalid_audience", "The token is not addressed to one of this service's client ids."
    )


def _as_set(reason: str) -> str:
    # The shared header check words its reasons for ID tokens.
    return reason.replace("ID token", "token")
