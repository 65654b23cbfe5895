"""ID-token verification (OpenID Connect Core §3.1.3.7), with joserfc doing the JOSE work.

Two pure steps so the key lookup (I/O: the JWKS) can sit between them:

1. :func:`read_header` — before any key is fetched: the token is a compact JWS no larger than
   16 KiB, ``alg`` is exactly ``RS256`` (so ``none``, ``HS256`` keyed with the public key, and
   every other algorithm are refused up front), there is no ``crit``, and ``kid`` names a key.
   Header keys (``jwk``/``jku``/``x5u``/``x5c``) are never used.
2. :func:`verify_id_token` — the signature with the JWKS key for that ``kid`` (joserfc
   ``jwt.decode``, RS256 only), then the claims: ``iss sub aud exp iat`` required; ``iss`` one of
   the accepted issuers; ``aud`` our server client id, with no untrusted extra audience; ``azp``
   one of the allowed app client ids or our own; ``exp``/``iat``/``nbf`` within the leeway
   (reported in the reason); ``at_hash`` required and matching when an access token came with
   the ID token (Google: "If the ID token is issued with an access token in the server flow,
   this is always included"); ``nonce`` when one was sent.

Every failure raises :class:`~grantkeeper.errors.UntrustedIdToken` whose ``reason`` says exactly
what failed, for the log; the token itself never appears in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import RSAKey

from grantkeeper import untrusted_json
from grantkeeper.errors import NonceMismatch, UntrustedIdToken

ALGORITHM = "RS256"
MAX_TOKEN_BYTES = 16 * 1024
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")
MAX_SUB_LENGTH = 255


@dataclass(frozen=True, slots=True)
class IdTokenPolicy:
    """What a valid ID token must say. Built once from discovery, settings and client secrets."""

    issuers: frozenset[str]
    audience: str
    """Our server (web) client id: the ``aud`` of ID tokens from a server-auth-code exchange."""
    allowed_azp: frozenset[str] = frozenset()
    """App client ids (iOS, Android, web) accepted as ``azp``; our own id is always accepted."""
    leeway_seconds: int = 60
    max_lifetime_seconds: int = 86400
    """``exp - iat`` above this is refused (as oauth2client and google-auth-library-nodejs do)."""

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("an ID-token policy needs an audience")
        if not self.issuers:
            raise ValueError("an ID-token policy needs at least one issuer")


@dataclass(frozen=True, slots=True)
class IdTokenHeader:
    kid: str
    alg: str


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who signed in, from a verified ID token. ``email_verified`` is reported, not enforced."""

    sub: str
    issuer: str
    aud: str
    azp: str | None
    issued_at: datetime
    expires_at: datetime
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    picture: str | None = None
    locale: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    hd: str | None = None
    nonce: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)


def read_header(token: str) -> IdTokenHeader:
    """Check the JOSE header of an ID token before any key is looked up."""
    if not isinstance(token, str) or not token:
        raise UntrustedIdToken("malformed: no ID token")
    raw = token.encode("ascii", errors="replace")
    if len(raw) > MAX_TOKEN_BYTES:
        raise UntrustedIdToken(f"malformed: ID token larger than {MAX_TOKEN_BYTES} bytes")
    try:
        header = jws.extract_compact(raw).headers()
        untrusted_json.check(header)
    except RecursionError:
        raise UntrustedIdToken("malformed: the header is nested too deeply") from None
    except (JoseError, ValueError, TypeError) as error:
        raise UntrustedIdToken(f"malformed: not a compact JWS ({_jose_reason(error)})") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise UntrustedIdToken(f"algorithm {alg!r} is not allowed; only {ALGORITHM} is accepted")
    if "crit" in header:
        raise UntrustedIdToken("header has a 'crit' parameter; none is understood")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise UntrustedIdToken("header has no key id ('kid')")
    return IdTokenHeader(kid=kid, alg=alg)


def verify_id_token(
    token: str,
    key: RSAKey,
    *,
    policy: IdTokenPolicy,
    now: datetime,
    access_token: str | None = None,
    nonce: str | None = None,
) -> VerifiedIdentity:
    """Verify the signature with ``key`` (the JWKS key for the header's ``kid``) and the claims.

    Args:
        access_token: the access token issued with this ID token; when given, ``at_hash`` is
            required and must match it.
        nonce: the nonce we sent, if any; the ``nonce`` claim must then equal it.

    Raises:
        UntrustedIdToken: with a precise ``reason``.
    """
    header = read_header(token)
    if key.kid is not None and key.kid != header.kid:
        raise UntrustedIdToken(f"key id {header.kid!r} does not match the key supplied")
    try:
        decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
    except RecursionError:
        raise UntrustedIdToken("malformed: the claims are nested too deeply") from None
    except (JoseError, ValueError, TypeError) as error:
        raise UntrustedIdToken(f"signature: {_jose_reason(error)}") from None
    claims = decoded.claims
    try:
        untrusted_json.check(claims)
    except untrusted_json.UnsafeJson as error:
        raise UntrustedIdToken(f"malformed: the claims are {error}") from None
    _validate_claims(claims, policy=policy, now=now)
    if access_token is not None:
        _check_at_hash(claims, access_token)
    if nonce is not None and not _same(claims.get("nonce"), nonce):
        raise NonceMismatch(
            "nonce does not match the one sent"
            if "nonce" in claims
            else "the ID token has no nonce although one was sent",
            "The ID token's nonce is not the one sent with the code.",
        )
    return _identity(claims)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256(access_token), unpadded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _validate_claims(claims: dict[str, Any], *, policy: IdTokenPolicy, now: datetime) -> None:
    now_ts = int(now.timestamp())
    leeway = policy.leeway_seconds
    registry = jwt.JWTClaimsRegistry(
        now=now_ts,
        leeway=leeway,
        iss={"essential": True, "values": sorted(policy.issuers)},
        sub={"essential": True},
        aud={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except MissingClaimError as error:
        raise UntrustedIdToken(f"missing required claim(s): {error.claim}") from None
    except ClaimError as error:
        raise UntrustedIdToken(_claim_reason(error, claims, policy, now_ts)) from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH or not sub.isascii():
        # OIDC Core §2: "It MUST NOT exceed 255 ASCII characters in length."
        raise UntrustedIdToken(f"sub is not a string of 1 to {MAX_SUB_LENGTH} ASCII characters")
    exp, iat = claims["exp"], claims["iat"]
    if exp - iat > policy.max_lifetime_seconds:
        raise UntrustedIdToken(
            f"lifetime exp - iat = {int(exp - iat)} s exceeds {policy.max_lifetime_seconds} s"
        )
    _check_audience(claims, policy)


def _check_audience(claims: dict[str, Any], policy: IdTokenPolicy) -> None:
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else list(aud)
    trusted = policy.allowed_azp | {policy.audience}
    if policy.audience not in audiences:
        raise UntrustedIdToken(f"audience {audiences!r} does not include our client id")
    untrusted = [a for a in audiences if a not in trusted]
    if untrusted:
        raise UntrustedIdToken(f"audience includes untrusted client id(s) {untrusted!r}")
    azp = claims.get("azp")
    if azp is None:
        if len(audiences) > 1:
            raise UntrustedIdToken("several audiences but no 'azp' claim")
        return
    if not isinstance(azp, str) or azp not in trusted:
        raise UntrustedIdToken(
            f"authorized party (azp) {azp!r} is not an allowed client id "
            "(GRANTKEEPER_ALLOWED_CLIENT_IDS)"
        )


def _claim_reason(
    error: ClaimError, claims: dict[str, Any], policy: IdTokenPolicy, now_ts: int
) -> str:
    name = error.claim
    value: Any = claims.get(name)
    leeway = policy.leeway_seconds
    if isinstance(error, ExpiredTokenError):
        return (
            f"expired: exp is {now_ts - int(value)} s in the past "
            f"({_iso(value)}); leeway is {leeway} s"
        )
    if name == "iss":
        return f"issuer {value!r} is not one of {sorted(policy.issuers)!r}"
    if name in ("iat", "nbf") and isinstance(value, int | float) and not isinstance(value, bool):
        return (
            f"{name} is {int(value) - now_ts} s in the future ({_iso(value)}); leeway is {leeway} s"
        )
    if name in ("exp", "iat", "nbf"):
        return f"claim {name!r} is not a NumericDate"
    return f"claim {name!r} is invalid ({error.description})"


def _check_at_hash(claims: dict[str, Any], access_token: str) -> None:
    found = claims.get("at_hash")
    if found is None:
        raise UntrustedIdToken("at_hash missing although an access token was issued")
    if not _same(found, at_hash(access_token)):
        raise UntrustedIdToken("at_hash does not match the access token")


def _identity(claims: dict[str, Any]) -> VerifiedIdentity:
    aud = claims["aud"]
    return VerifiedIdentity(
        sub=claims["sub"],
        issuer=claims["iss"],
        aud=aud if isinstance(aud, str) else aud[0],
        azp=_str(claims, "azp"),
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        email=_str(claims, "email"),
        email_verified=_bool(claims.get("email_verified")),
        name=_str(claims, "name"),
        picture=_str(claims, "picture"),
        locale=_str(claims, "locale"),
        given_name=_str(claims, "given_name"),
        family_name=_str(claims, "family_name"),
        hd=_str(claims, "hd"),
        nonce=_str(claims, "nonce"),
        claims=dict(claims),
    )


def _str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool | None:
    # A JSON boolean in today's tokens; the string "true"/"false" in legacy ones and tokeninfo.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _same(found: Any, expected: str) -> bool:
    return isinstance(found, str) and hmac.compare_digest(found.encode(), expected.encode())


def _iso(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp), UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return "out of range"


def _jose_reason(error: BaseException) -> str:
    if isinstance(error, untrusted_json.UnsafeJson):
        return str(error)
    if isinstance(error, JoseError):
        return f"{error.error}: {error.description}" if error.description else error.error
    return type(error).__name__
