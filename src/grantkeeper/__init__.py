"""grantkeeper: the backend half of Sign in with Google with server-side access."""

from grantkeeper._version import __version__
from grantkeeper.errors import (
    ConfigurationError,
    CsrfHeaderMissing,
    GrantkeeperError,
    GrantRevoked,
    InsecureTransport,
    InvalidCode,
    InvalidRequest,
    MissingScopes,
    PayloadTooLarge,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    StoreUnavailable,
    TokenDecryptionError,
    Unauthorized,
    UnknownUser,
    UntrustedIdToken,
)

__all__ = [
    "ConfigurationError",
    "CsrfHeaderMissing",
    "GrantRevoked",
    "GrantkeeperError",
    "InsecureTransport",
    "InvalidCode",
    "InvalidRequest",
    "MissingScopes",
    "PayloadTooLarge",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "StoreUnavailable",
    "TokenDecryptionError",
    "Unauthorized",
    "UnknownUser",
    "UntrustedIdToken",
    "__version__",
]
