"""Retrying provider calls: exponential backoff with jitter (tenacity), ``Retry-After`` honoured.

Which failures are worth another attempt depends on the call, so the caller passes two
predicates (see :mod:`grantkeeper.oauth.provider` for the per-call reasoning). The wait is
``Retry-After`` when a 429/503 carries one, else tenacity's ``wait_exponential_jitter``; a
``Retry-After`` longer than ``max_retry_after`` ends the retries at once (the caller gets the
answer, not a long stall). ``sleep`` is injectable so tests move through the waits instantly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A small attempt budget: a sign-in or a worker waits seconds, not minutes."""

    attempts: int = 3
    """Total attempts, the first included."""
    multiplier: float = 0.5
    """First backoff in seconds; doubles each retry."""
    max_wait: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 30.0
    sleep: Sleep = asyncio.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) as seconds from ``now``: delay-seconds or HTTP-date."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    policy: RetryPolicy,
    retry_response: Callable[[httpx.Response], bool],
    retry_exception: Callable[[BaseException], bool],
    now: Callable[[], datetime],
) -> httpx.Response:
    """Call ``send`` until it gives a response not worth retrying or the budget is spent.

    Returns the last response (possibly an error the caller then classifies); re-raises the
    last exception when the final attempt raised.
    """
    # The first attempt outside tenacity: most calls need no other, and tenacity's machinery
    # (a copy of the rule, its state, an inspect of the callable, its actions) cost ~3% of a
    # refresh's CPU. An attempt worth retrying is replayed to tenacity as its first, so the
    # waits, the stop rules and what is returned or raised in the end are tenacity's, as before.
    first_error: BaseException | None = None
    try:
        first = await send()
    except BaseException as error:
        if policy.attempts == 1 or not retry_exception(error):
            raise
        first_error = error
    else:
        if policy.attempts == 1 or not retry_response(first):
            return first
    replayed = False

    async def attempt() -> httpx.Response:
        nonlocal replayed
        if replayed:
            return await send()
        replayed = True
        if first_error is not None:
            raise first_error
        return first

    # tenacity keeps a call's state on the object: each call runs on a copy of the rule.
    retrying = _retrying(policy, retry_response, retry_exception, now).copy()
    response: httpx.Response = await retrying(attempt)
    return response


@lru_cache(maxsize=64)
def _retrying(
    policy: RetryPolicy,
    retry_response: Callable[[httpx.Response], bool],
    retry_exception: Callable[[BaseException], bool],
    now: Callable[[], datetime],
) -> AsyncRetrying:
    """The retry rule of one kind of call, built once (its strategies, and a class): built per
    call it cost ~2% of a bulk refresh's CPU. The key holds the clock's ``now`` and the
    predicates, all stateless."""
    backoff = wait_exponential_jitter(
        multiplier=policy.multiplier, max=policy.max_wait, jitter=policy.jitter
    )

    def retry_after(state: RetryCallState) -> float | None:
        outcome = state.outcome
        if outcome is None or outcome.failed:
            return None
        return retry_after_seconds(outcome.result().headers, now())

    def wait(state: RetryCallState) -> float:
        after = retry_after(state)
        return after if after is not None else backoff(state)

    class _RetryAfterTooLong(stop_base):
        def __call__(self, retry_state: RetryCallState) -> bool:
            after = retry_after(retry_state)
            return after is not None and after > policy.max_retry_after

    return AsyncRetrying(
        stop=stop_any(stop_after_attempt(policy.attempts), _RetryAfterTooLong()),
        wait=wait,
        retry=retry_if_exception(retry_exception) | retry_if_result(retry_response),
        sleep=policy.sleep,
        reraise=True,
        # When the budget is spent on a retryable *response*, hand that response back.
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
