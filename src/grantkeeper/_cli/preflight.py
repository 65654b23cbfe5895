"""What ``grantkeeper serve`` checks before it binds its port.

A configuration mistake found inside uvicorn's lifespan would print a traceback and "Application
startup failed"; found here it is one line (``code: what``) and exit code 1. The settings have
already checked themselves (ranges, redirect URIs, client secrets, the key ring rule); this
opens what the settings point at: the store (migrating it unless
``GRANTKEEPER_MIGRATE_ON_START=false``) and the issuer's OpenID discovery document, so a wrong
``GRANTKEEPER_ISSUER`` is named as such instead of surfacing later as "retry later".
"""

from __future__ import annotations

from grantkeeper.errors import ConfigurationError, GrantkeeperError
from grantkeeper.settings import Settings


async def check_before_serving(settings: Settings) -> None:
    from grantkeeper.keeper import Keeper

    async with Keeper(settings):
        pass  # the store opens (and migrates when allowed), the key ring loads
    await check_issuer(settings)


async def check_issuer(settings: Settings) -> None:
    """Fetch and validate ``ISSUER/.well-known/openid-configuration`` once."""
    from grantkeeper.oauth import OAuthProvider
    from grantkeeper.oauth.discovery import discovery_url

    provider = OAuthProvider(settings)
    try:
        await provider.discover()
    except GrantkeeperError as error:
        raise ConfigurationError(
            f"GRANTKEEPER_ISSUER={settings.issuer}: OpenID discovery at "
            f"{discovery_url(settings.issuer)} failed ({error.code}: {error.message})"
        ) from None
    finally:
        await provider.aclose()
