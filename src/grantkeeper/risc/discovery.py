"""The RISC issuer's metadata and signing keys, fetched and cached like the OpenID ones.

Google: "Fetch https://accounts.google.com/.well-known/risc-configuration and take ``issuer``
and ``jwks_uri``" (google-protocol.md §6.3). The document lives under the configured
``GRANTKEEPER_ISSUER``, so the emulator and Google differ only by that URL. Its ``issuer`` is
not the OpenID issuer (Google's has a trailing slash); whatever it says is what a SET's ``iss``
must equal.

The decisions — how long to cache (:func:`~grantkeeper.oauth.http_cache.cache_lifetime`), which
JWKS entries are usable (:func:`~grantkeeper.oauth.jwks.parse_jwks`), when an unknown ``kid``
may trigger a re-fetch (:class:`~grantkeeper.oauth.jwks.JwksCache`) — are the provider
client's, shared rather than rewritten; this module is the thin async shell around them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import RSAKey

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import (
    GrantkeeperError,
    InvalidSecurityEvent,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from grantkeeper.oauth.http_cache import cache_lifetime
from grantkeeper.oauth.jwks import JwksCache, KeyLookup, parse_jwks
from grantkeeper.outbound_tls import verified_context

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/risc-configuration"


@dataclass(frozen=True, slots=True)
class RiscConfiguration:
    issuer: str
    jwks_uri: str
    delivery_methods_supported: tuple[str, ...] = ()


def configuration_url(issuer: str) -> str:
    """``ISSUER/.well-known/risc-configuration`` (a trailing slash on the issuer is dropped)."""
    return issuer.rstrip("/") + WELL_KNOWN


def parse_configuration(document: Any, *, issuer: str) -> RiscConfiguration:
    """Validate a decoded risc-configuration fetched under ``issuer``.

    The ``issuer`` must be the configured issuer, with or without a trailing slash (the
    OpenID issuer has none; Google's RISC issuer has one), so a document served elsewhere
    cannot name another issuer. ``jwks_uri`` must be https when the issuer is.
    """
    if not isinstance(document, dict):
        raise ProviderError("The RISC configuration is not a JSON object.")
    found = document.get("issuer")
    if not isinstance(found, str) or found.rstrip("/") != issuer.rstrip("/"):
        raise ProviderError(
            f"The RISC configuration's issuer {str(found)[:100]!r} does not belong to the "
            f"configured issuer {issuer!r} (GRANTKEEPER_ISSUER)."
        )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("https", "http"):
        raise ProviderError("The RISC configuration has no jwks_uri URL.")
    if urlsplit(found).scheme == "https" and urlsplit(jwks_uri).scheme != "https":
        raise ProviderError("The RISC configuration's jwks_uri is not an https URL.")
    methods = document.get("delivery_methods_supported")
    return RiscConfiguration(
        issuer=found,
        jwks_uri=jwks_uri,
        delivery_methods_supported=tuple(m for m in methods or () if isinstance(m, str)),
    )


class RiscKeySource:
    """The RISC configuration and signing keys of one issuer, cached.

    Args:
        issuer: ``GRANTKEEPER_ISSUER``.
        clock: for cache lifetimes.
        transport: an httpx transport (tests, metrics); default a real connection.
        timeout: seconds per request.
    """

    def __init__(
        self,
        issuer: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        min_refetch_interval: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self._clock = clock
        self._transport = transport
        self._timeout = timeout
        self._config: RiscConfiguration | None = None
        self._config_expires_at: datetime | None = None
        self._jwks = JwksCache(min_refetch_interval=min_refetch_interval)
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Nothing to release: each (rare, cached) fetch uses its own connection."""

    async def configuration(self) -> RiscConfiguration:
        """The issuer's risc-configuration; a failed re-fetch keeps the cached one."""
        async with self._lock:
            return await self._configuration()

    async def key(self, kid: str) -> tuple[RiscConfiguration, RSAKey]:
        """The configuration and the signing key named ``kid``.

        Raises:
            InvalidSecurityEvent: ``invalid_key`` — the kid is not published (after one
                rate-limited re-fetch).
            ProviderUnavailable: the keys cannot be fetched and none are cached.
        """
        async with self._lock:
            config = await self._configuration()
            lookup = self._jwks.plan(kid, self._clock.now())
            if lookup is KeyLookup.FETCH:
                await self._fetch_keys(config.jwks_uri)
            key = (self._jwks.keys or {}).get(kid)
        if key is None:
            raise InvalidSecurityEvent(
                "invalid_key", f"The key id {kid[:64]!r} is not published by the RISC issuer."
            )
        return config, key

    async def _configuration(self) -> RiscConfiguration:
        now = self._clock.now()
        if self._config and self._config_expires_at and now < self._config_expires_at:
            return self._config
        try:
            response = await self._get(configuration_url(self.issuer))
            config = parse_configuration(_json(response), issuer=self.issuer)
        except GrantkeeperError as error:
            if self._config is None:
                raise
            log.warning("RISC configuration re-fetch failed (%s); keeping the cached one", error)
            return self._config
        lifetime = cache_lifetime(response.headers, floor=60, ceiling=86400, default=3600)
        self._config = config
        self._config_expires_at = now + timedelta(seconds=lifetime)
        return config

    async def _fetch_keys(self, jwks_uri: str) -> None:
        try:
            response = await self._get(jwks_uri)
            keys = parse_jwks(_json(response))
        except GrantkeeperError as error:
            if self._jwks.keys is None:
                raise
            # Fail closed only when nothing is cached; an outage must not drop known keys.
            log.warning("RISC JWKS re-fetch failed (%s); keeping the cached keys", error)
            self._jwks.fetched_at = self._clock.now()
            return
        lifetime = cache_lifetime(response.headers, floor=60, ceiling=86400, default=3600)
        self._jwks.store(keys, lifetime=lifetime, now=self._clock.now())

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": "grantkeeper"},
            follow_redirects=False,
            verify=verified_context(),
        )

    async def _get(self, url: str) -> httpx.Response:
        try:
            if self._transport is None:
                async with self._client() as client:
                    response = await client.get(url)
            else:
                # An injected transport belongs to the caller; closing the client would close it.
                response = await self._client().get(url)
        except httpx.TimeoutException:
            raise ProviderTimeout(f"The RISC issuer did not answer in time ({url}).") from None
        except httpx.TransportError as error:
            raise ProviderUnavailable(
                f"The RISC issuer is unreachable ({type(error).__name__}: {url})."
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(f"The RISC issuer answered HTTP {response.status_code}.")
        if response.status_code != 200:
            raise ProviderError(f"{url} answered HTTP {response.status_code}.")
        return response


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"{response.request.url} did not answer JSON.") from None
