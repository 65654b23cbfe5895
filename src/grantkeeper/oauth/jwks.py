"""The provider's signing keys (JWKS): parsing and the cache's decisions, no I/O.

Rules (issue 3): keys are cached for the response's ``Cache-Control`` lifetime (clamped, see
:mod:`grantkeeper.oauth.http_cache`); an unknown ``kid`` while the cache is fresh triggers one
re-fetch — Google publishes a new key some time before signing with it, so after a rotation the
first token with the new kid finds it in a fresh fetch — but at most once per
``min_refetch_interval`` seconds, so a stream of forged kids cannot make us hammer the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from grantkeeper.errors import ProviderError


class KeyLookup(Enum):
    USE_CACHE = "use_cache"
    FETCH = "fetch"
    UNKNOWN_KID = "unknown_kid"


def parse_jwks(document: Any) -> dict[str, RSAKey]:
    """RSA signing keys by ``kid`` from a JWKS document (RFC 7517 §5).

    Keys of another type, for encryption, for another algorithm or without a ``kid`` are skipped
    (RFC 7517 §5: ignore what is not understood); a document with none left is an error.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ProviderError("The provider's JWKS is not a JSON object with a 'keys' list.")
    keys: dict[str, RSAKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        # Only the public members: a JWKS that leaks a private exponent must not make us sign.
        public = {k: entry[k] for k in ("kty", "n", "e", "kid", "use", "alg") if k in entry}
        try:
            keys[kid] = RSAKey.import_key(public)
        except (JoseError, ValueError, TypeError):
            continue
    if not keys:
        raise ProviderError("The provider's JWKS has no usable RS256 signing key.")
    return keys


@dataclass
class JwksCache:
    """The cached key set and when it may be re-fetched. Mutated only by the async shell."""

    min_refetch_interval: float = 30.0
    keys: dict[str, RSAKey] | None = None
    expires_at: datetime | None = None
    fetched_at: datetime | None = None

    def plan(self, kid: str, now: datetime) -> KeyLookup:
        """What to do for a token signed with ``kid``."""
        if self.keys is None or self.expires_at is None or now >= self.expires_at:
            return KeyLookup.FETCH
        if kid in self.keys:
            return KeyLookup.USE_CACHE
        if self.fetched_at is None or now - self.fetched_at >= timedelta(
            seconds=self.min_refetch_interval
        ):
            return KeyLookup.FETCH
        return KeyLookup.UNKNOWN_KID

    def store(self, keys: dict[str, RSAKey], *, lifetime: float, now: datetime) -> None:
        self.keys = keys
        self.fetched_at = now
        self.expires_at = now + timedelta(seconds=lifetime)
