"""OpenID Provider metadata (OpenID Connect Discovery 1.0) — parsing and validation, no I/O.

The keeper finds every endpoint through ``ISSUER/.well-known/openid-configuration``, so Google
and the emulator differ only by the issuer URL. Discovery §4.3: "The issuer value returned MUST
be identical to the Issuer URL that was used as the prefix to /.well-known/openid-configuration".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from grantkeeper.errors import ProviderError

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
"""Both forms Google puts in ``iss`` ("accounts.google.com is also returned for legacy
implementations")."""

_WELL_KNOWN = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    authorization_endpoint: str | None = None

    @property
    def accepted_issuers(self) -> frozenset[str]:
        """The ``iss`` values an ID token may carry: both Google forms for Google, else exact."""
        if self.issuer in GOOGLE_ISSUERS:
            return GOOGLE_ISSUERS
        return frozenset({self.issuer})


def discovery_url(issuer: str) -> str:
    """``ISSUER/.well-known/openid-configuration`` (a trailing slash on the issuer is dropped)."""
    return issuer.rstrip("/") + _WELL_KNOWN


def parse_provider_metadata(document: Any, *, issuer: str) -> ProviderMetadata:
    """Validate a decoded discovery document fetched for ``issuer``.

    Raises:
        ProviderError: not an object, issuer mismatch, a required endpoint missing, an endpoint
            not on HTTPS while the issuer is, or RS256 not among the signing algorithms.
    """
    if not isinstance(document, dict):
        raise ProviderError("The discovery document is not a JSON object.")
    found = document.get("issuer")
    if found != issuer.rstrip("/") and found != issuer:
        raise ProviderError(
            f"The discovery document's issuer {found!r} is not the configured issuer "
            f"{issuer!r} (GRANTKEEPER_ISSUER)."
        )
    algorithms = document.get("id_token_signing_alg_values_supported")
    if isinstance(algorithms, list) and "RS256" not in algorithms:
        raise ProviderError("The provider does not sign ID tokens with RS256.")
    secure = urlsplit(str(found)).scheme == "https"
    endpoints: dict[str, str | None] = {}
    for name in (
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "userinfo_endpoint",
        "authorization_endpoint",
    ):
        value = document.get(name)
        if value is None:
            endpoints[name] = None
            continue
        if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
            raise ProviderError(f"The discovery document's {name} is not a URL.")
        if secure and urlsplit(value).scheme != "https":
            # An https issuer advertising a plain-http endpoint would send secrets in clear.
            raise ProviderError(f"The discovery document's {name} is not an https URL.")
        endpoints[name] = value
    token_endpoint = endpoints["token_endpoint"]
    jwks_uri = endpoints["jwks_uri"]
    if token_endpoint is None or jwks_uri is None:
        missing = "token_endpoint" if token_endpoint is None else "jwks_uri"
        raise ProviderError(f"The discovery document has no {missing}.")
    return ProviderMetadata(
        issuer=str(found),
        token_endpoint=token_endpoint,
        jwks_uri=jwks_uri,
        revocation_endpoint=endpoints["revocation_endpoint"],
        userinfo_endpoint=endpoints["userinfo_endpoint"],
        authorization_endpoint=endpoints["authorization_endpoint"],
    )
