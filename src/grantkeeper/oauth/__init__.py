"""Talking to the OpenID provider (Google, or the emulator): discovery, tokens, ID tokens.

Pure decision modules (:mod:`.client_secrets`, :mod:`.scopes`, :mod:`.discovery`,
:mod:`.token_endpoint`, :mod:`.id_token`, :mod:`.jwks`, :mod:`.http_cache`, :mod:`.retry`)
and one async shell, :class:`OAuthProvider`.
"""

from grantkeeper.oauth.client_secrets import (
    ClientSecrets,
    load_client_secrets,
    parse_client_secrets,
)
from grantkeeper.oauth.discovery import ProviderMetadata
from grantkeeper.oauth.id_token import IdTokenPolicy, VerifiedIdentity, at_hash
from grantkeeper.oauth.provider import OAuthProvider, SignIn
from grantkeeper.oauth.provider_options import ProviderOptions
from grantkeeper.oauth.retry import RetryPolicy
from grantkeeper.oauth.scopes import normalize_scope, normalize_scopes, scope_string
from grantkeeper.oauth.token_endpoint import (
    Platform,
    RefreshTokenRejected,
    TokenResponse,
    redirect_uri_for,
)

__all__ = [
    "ClientSecrets",
    "IdTokenPolicy",
    "OAuthProvider",
    "Platform",
    "ProviderMetadata",
    "ProviderOptions",
    "RefreshTokenRejected",
    "RetryPolicy",
    "SignIn",
    "TokenResponse",
    "VerifiedIdentity",
    "at_hash",
    "load_client_secrets",
    "normalize_scope",
    "normalize_scopes",
    "parse_client_secrets",
    "redirect_uri_for",
    "scope_string",
]
