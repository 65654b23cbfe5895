"""The grant's whole life, and the application API: sign-in, access tokens, credentials,
disconnect and revocation, security events, the sweep, key maintenance and read queries.

Everything that changes a grant goes through :class:`Keeper` and announces one
:class:`GrantEvent` on its bus (webhooks and metrics listen there). The web API and the CLI
call only what this module exports; the modules under it are the keeper's parts, each given
the store, the provider, the clock and the event bus (never the keeper itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grantkeeper.keeper.core import Keeper
from grantkeeper.keeper.events import GrantEvent, Listener
from grantkeeper.keeper.results import AccessToken, DisconnectOutcome, SignInResult
from grantkeeper.keeper.sign_in_decision import SignInCandidate

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials
    from grantkeeper.keeper.sync import SyncKeeper

# google-auth's credentials and anyio's portal load when first asked for.
_LAZY = {
    "KeeperCredentials": "grantkeeper.keeper.credentials",
    "SyncKeeper": "grantkeeper.keeper.sync",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'grantkeeper.keeper' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AccessToken",
    "DisconnectOutcome",
    "GrantEvent",
    "Keeper",
    "KeeperCredentials",
    "Listener",
    "SignInCandidate",
    "SignInResult",
    "SyncKeeper",
]
