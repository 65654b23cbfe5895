"""How long the provider's documents are cached, and how often a call is tried."""

from __future__ import annotations

from dataclasses import dataclass, field

from grantkeeper.oauth.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """Cache bounds (seconds) and the retry budget; defaults suit Google."""

    discovery_floor: float = 60.0
    discovery_ceiling: float = 24 * 3600.0
    discovery_default: float = 3600.0
    jwks_floor: float = 60.0
    jwks_ceiling: float = 24 * 3600.0
    jwks_default: float = 3600.0
    jwks_min_refetch_interval: float = 30.0
    """At most one JWKS fetch per this many seconds for unknown key ids."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
