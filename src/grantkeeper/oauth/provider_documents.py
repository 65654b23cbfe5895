"""The provider's discovery document and ID-token signing keys, fetched and cached per their
``Cache-Control`` (within the bounds of :class:`ProviderOptions`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import httpx
from joserfc.jwk import RSAKey

from grantkeeper.clock import Clock
from grantkeeper.errors import GrantkeeperError, UntrustedIdToken
from grantkeeper.oauth.discovery import ProviderMetadata, discovery_url, parse_provider_metadata
from grantkeeper.oauth.http_cache import cache_lifetime
from grantkeeper.oauth.jwks import JwksCache, KeyLookup, parse_jwks
from grantkeeper.oauth.provider_calls import ProviderCalls, json_or_raise
from grantkeeper.oauth.provider_options import ProviderOptions

logger = logging.getLogger("grantkeeper.oauth")


class ProviderDocuments:
    """One issuer's metadata and JWKS, each fetched by one caller at a time."""

    def __init__(
        self, calls: ProviderCalls, issuer: str, clock: Clock, options: ProviderOptions
    ) -> None:
        self._calls = calls
        self._issuer = issuer
        self._clock = clock
        self._options = options
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires_at: datetime | None = None
        self._discovery_lock = asyncio.Lock()
        self._jwks = JwksCache(min_refetch_interval=options.jwks_min_refetch_interval)
        self._jwks_lock = asyncio.Lock()

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata, fetched and cached per its Cache-Control.

        A failed re-fetch keeps serving the previous metadata (endpoints seldom move); with
        nothing cached the failure is raised.
        """
        async with self._discovery_lock:
            now = self._clock.now()
            if self._metadata and self._metadata_expires_at and now < self._metadata_expires_at:
                return self._metadata
            try:
                response = await self._calls.get("discovery", discovery_url(self._issuer))
                document = json_or_raise("discovery", response)
                metadata = parse_provider_metadata(document, issuer=self._issuer)
            except GrantkeeperError as error:
                if self._metadata is None:
                    raise
                logger.warning("discovery re-fetch failed (%s); keeping cached metadata", error)
                return self._metadata
            opts = self._options
            lifetime = _lifetime(
                response, opts.discovery_floor, opts.discovery_ceiling, opts.discovery_default
            )
            self._metadata = metadata
            self._metadata_expires_at = now + timedelta(seconds=lifetime)
            return metadata

    async def signing_key(self, kid: str, metadata: ProviderMetadata) -> RSAKey:
        """The key ``kid`` names, re-fetching the JWKS when it is unknown (rate-limited).

        Raises:
            UntrustedIdToken: no such key, even after a fetch.
        """
        async with self._jwks_lock:
            plan = self._jwks.plan(kid, self._clock.now())
            if plan is KeyLookup.FETCH:
                await self._fetch_jwks(metadata.jwks_uri)
            key = (self._jwks.keys or {}).get(kid)
        if key is None:
            why = (
                "re-fetch rate-limited"
                if plan is KeyLookup.UNKNOWN_KID
                else "not in the freshly fetched JWKS"
            )
            raise UntrustedIdToken(f"unknown key id {kid[:64]!r} ({why})")
        return key

    async def _fetch_jwks(self, jwks_uri: str) -> None:
        response = await self._calls.get("jwks", jwks_uri)
        keys = parse_jwks(json_or_raise("jwks", response))
        opts = self._options
        lifetime = _lifetime(response, opts.jwks_floor, opts.jwks_ceiling, opts.jwks_default)
        self._jwks.store(keys, lifetime=lifetime, now=self._clock.now())


def _lifetime(response: httpx.Response, floor: float, ceiling: float, default: float) -> float:
    """Seconds to keep a document, from its ``Cache-Control`` within the bounds."""
    return cache_lifetime(response.headers, floor=floor, ceiling=ceiling, default=default)
