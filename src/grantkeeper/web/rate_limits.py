"""Rate limits: per client address on sign-in, per service key on the token API.

Token buckets in this process's memory (``limits`` would add a dependency for the same
arithmetic): with ``serve --workers N`` or several instances, each process allows the rate, so
the effective ceiling is N times the setting. The client address is the one the trusted proxies
vouch for (``GRANTKEEPER_TRUSTED_PROXIES``), never a header an outsider can set. Sign-in's
budget is small because every accepted sign-in may cost a call to Google's token endpoint:
junk codes from one address cannot turn into unlimited calls there.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from grantkeeper.errors import RateLimited

#: Buckets kept before idle ones are dropped (bounds memory under a flood of addresses).
MAX_BUCKETS = 100_000


class RateLimiter:
    """``per_minute`` requests per key, in bursts of up to ``per_minute`` (0: no limit)."""

    def __init__(
        self, per_minute: int, *, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.what = what
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Spend one request of ``key``'s budget, or raise :class:`RateLimited`."""
        if self.per_minute <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self._rate)
                raise RateLimited(
                    f"Too many requests {self.what} (more than {self.per_minute} a minute).",
                    retry_after=max(1, wait),
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely carries no information.
        full = [
            key
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self._rate >= self.per_minute
        ]
        for key in full:
            del self._buckets[key]
