"""How long a discovery document or a JWKS may be cached, from its response headers.

Google asks verifiers to honour HTTP caching headers on discovery and certs; its JWKS carries
``Cache-Control: public, max-age=N, must-revalidate, no-transform`` with N of a few hours
(google-protocol.md §4.3). We take ``max-age`` minus ``Age`` and clamp it between a floor (so a
``no-cache`` or ``max-age=0`` provider cannot make us fetch on every sign-in) and a ceiling (so
a very long max-age cannot pin a key set past a rotation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[,=]|$)", re.IGNORECASE)


def cache_lifetime(
    headers: Mapping[str, str], *, floor: float, ceiling: float, default: float
) -> float:
    """Seconds a response may be reused, clamped to ``[floor, ceiling]``.

    ``default`` applies when the response says nothing about caching.
    """
    control = headers.get("cache-control", "")
    lifetime: float
    if _NO_CACHE.search(control):
        lifetime = 0.0
    elif match := _MAX_AGE.search(control):
        lifetime = float(match.group(1)) - _age(headers)
    else:
        lifetime = default
    return min(max(lifetime, floor), ceiling)


def _age(headers: Mapping[str, str]) -> float:
    value = headers.get("age", "").strip()
    return float(value) if value.isdigit() else 0.0
