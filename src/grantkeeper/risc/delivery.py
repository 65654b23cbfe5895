"""One push delivery (RFC 8935): a Security Event Token verified against the RISC issuer's keys
and its events parsed. Nothing here changes a grant; the keeper acts on what this returns."""

from __future__ import annotations

from collections.abc import Collection

from grantkeeper.errors import InvalidSecurityEvent
from grantkeeper.risc.discovery import RiscKeySource
from grantkeeper.risc.events import MalformedEvent, SecurityEvent, parse_events
from grantkeeper.risc.verify import VerifiedSet, read_kid, verify_set


async def read_delivery(
    token: str, keys: RiscKeySource, *, audiences: Collection[str]
) -> tuple[VerifiedSet, list[SecurityEvent]]:
    """Header, key (RISC JWKS by ``kid``), signature, claims, then the events.

    Raises:
        InvalidSecurityEvent: malformed, forged, not for ``audiences``, or events of the wrong
            shape (RFC 8935's ``err`` code in ``extra``; answer 400).
        ProviderUnavailable: the issuer's keys cannot be fetched (answer 503; Google retries).
    """
    token = token.strip()
    config, key = await keys.key(read_kid(token))
    verified = verify_set(token, key, issuer=config.issuer, audiences=audiences)
    try:
        events = parse_events(verified.claims)
    except MalformedEvent as error:
        raise InvalidSecurityEvent("invalid_request", f"Malformed events: {error}") from None
    return verified, events
