"""The grant's whole life, and the application API: sign-in, access tokens, credentials,
disconnect and revocation, security events, the sweep, key maintenance and read queries.

Everything that changes a grant goes through :class:`Keeper` and announces one
:class:`GrantEvent` on its bus (metrics listen there); the app's webhook for it is written to the
store's outbox in the change's own transaction and delivered from there. The web API and the CLI
call only what this module exports; the modules under it are the keeper's parts, each given
the store, the provider, the clock and the event bus (never the keeper itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grantkeeper._lazy import lazy_exports
from grantkeeper.crypto import generate_key
from grantkeeper.keeper.core import Keeper
from grantkeeper.keeper.events import GrantEvent, Listener
from grantkeeper.keeper.keys import KeyStatus, RotationReport
from grantkeeper.keeper.reads import MAX_PAGE, Page
from grantkeeper.keeper.results import (
    AccessToken,
    AuditEntry,
    DisconnectOutcome,
    EventOutcome,
    Receipt,
    SignInResult,
    UserGrants,
)
from grantkeeper.keeper.sign_in_decision import SignInCandidate
from grantkeeper.keeper.sweep import GrantHealth, GrantReport, SweepOptions, SweepReport

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials
    from grantkeeper.keeper.sync import SyncKeeper
    from grantkeeper.risc.registration import DEFAULT_EVENTS, RiscStream, service_account_jwt

# google-auth's credentials and anyio's portal load when first asked for.
_LAZY = {
    # Registering the RISC receiver with Google's stream API (``grantkeeper risc``).
    "DEFAULT_EVENTS": "grantkeeper.risc.registration",
    "RiscStream": "grantkeeper.risc.registration",
    "service_account_jwt": "grantkeeper.risc.registration",
    "KeeperCredentials": "grantkeeper.keeper.credentials",
    "SyncKeeper": "grantkeeper.keeper.sync",
}


__getattr__ = lazy_exports("grantkeeper.keeper", globals(), _LAZY)


__all__ = [
    "DEFAULT_EVENTS",
    "MAX_PAGE",
    "AccessToken",
    "AuditEntry",
    "DisconnectOutcome",
    "EventOutcome",
    "GrantEvent",
    "GrantHealth",
    "GrantReport",
    "Keeper",
    "KeeperCredentials",
    "KeyStatus",
    "Listener",
    "Page",
    "Receipt",
    "RiscStream",
    "RotationReport",
    "SignInCandidate",
    "SignInResult",
    "SweepOptions",
    "SweepReport",
    "SyncKeeper",
    "UserGrants",
    "generate_key",
    "service_account_jwt",
]
