"""grantkeeper: the backend half of Sign in with Google with server-side access.

::

    from grantkeeper import Keeper, Settings

    async with Keeper(Settings()) as keeper:
        result = await keeper.sign_in(server_auth_code, platform="ios")
        token = await keeper.access_token(result.sub)

``SyncKeeper`` is the same for synchronous code (scripts, Celery tasks). The keeper, its results
and the settings load on first use, so ``import grantkeeper`` (and the CLI) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grantkeeper._lazy import lazy_exports
from grantkeeper._version import __version__
from grantkeeper.errors import (
    ConfigurationError,
    CsrfHeaderMissing,
    GrantkeeperError,
    GrantRevoked,
    InsecureTransport,
    InvalidCode,
    InvalidRequest,
    InvalidSecurityEvent,
    KeeperUnreachable,
    MissingScopes,
    NonceMismatch,
    PayloadTooLarge,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ServiceKeyLimit,
    SignInIncomplete,
    SignInRefused,
    StoreUnavailable,
    TokenDecryptionError,
    Unauthorized,
    UnknownUser,
    UnknownWebhook,
    UntrustedIdToken,
)

if TYPE_CHECKING:
    from grantkeeper.keeper import (
        AccessToken,
        DisconnectOutcome,
        GrantEvent,
        Keeper,
        KeeperCredentials,
        Listener,
        SignInCandidate,
        SignInResult,
        SyncKeeper,
    )
    from grantkeeper.settings import Settings

_LAZY = {
    "AccessToken": "grantkeeper.keeper",
    "DisconnectOutcome": "grantkeeper.keeper",
    "GrantEvent": "grantkeeper.keeper",
    "Keeper": "grantkeeper.keeper",
    "KeeperCredentials": "grantkeeper.keeper",
    "Listener": "grantkeeper.keeper",
    "Settings": "grantkeeper.settings",
    "SignInCandidate": "grantkeeper.keeper",
    "SignInResult": "grantkeeper.keeper",
    "SyncKeeper": "grantkeeper.keeper",
}


__getattr__ = lazy_exports("grantkeeper", globals(), _LAZY)


__all__ = [
    "AccessToken",
    "ConfigurationError",
    "CsrfHeaderMissing",
    "DisconnectOutcome",
    "GrantEvent",
    "GrantRevoked",
    "GrantkeeperError",
    "InsecureTransport",
    "InvalidCode",
    "InvalidRequest",
    "InvalidSecurityEvent",
    "Keeper",
    "KeeperCredentials",
    "KeeperUnreachable",
    "Listener",
    "MissingScopes",
    "NonceMismatch",
    "PayloadTooLarge",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "ServiceKeyLimit",
    "Settings",
    "SignInCandidate",
    "SignInIncomplete",
    "SignInRefused",
    "SignInResult",
    "StoreUnavailable",
    "SyncKeeper",
    "TokenDecryptionError",
    "Unauthorized",
    "UnknownUser",
    "UnknownWebhook",
    "UntrustedIdToken",
    "__version__",
]
