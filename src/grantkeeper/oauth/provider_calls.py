"""One call to the provider over HTTP: timed, logged and traced, retried by the caller's rule,
and its failures mapped to grantkeeper's errors (``ProviderUnavailable``, ``ProviderTimeout``,
``ProviderError``) with the provider's ``Retry-After`` passed on.

Log lines carry the endpoint, status, attempt, latency and outcome — never a token, a code or
the client secret (requests send them in form bodies, never in URLs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

from grantkeeper.clock import Clock
from grantkeeper.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from grantkeeper.oauth.retry import RetryPolicy, retry_after_seconds, send_with_retries
from grantkeeper.oauth.token_endpoint import is_transient, parse_error_body
from grantkeeper.tracing import span

logger = logging.getLogger("grantkeeper.oauth")

#: Failures that happen before the request leaves: the provider cannot have processed it.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

RetryResponse = Callable[[httpx.Response], bool]
RetryException = Callable[[BaseException], bool]


class ProviderCalls:
    """GET and POST to the provider's endpoints with one ``httpx.AsyncClient``.

    Args:
        http: the client (its owner closes it).
        clock: the time source of ``Retry-After`` dates and retry deadlines.
        retry: the retry budget.
    """

    def __init__(self, http: httpx.AsyncClient, clock: Clock, retry: RetryPolicy) -> None:
        self._http = http
        self._clock = clock
        self._retry = retry
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, url: str) -> httpx.URL:
        """``url`` parsed once: httpx parses a string on every request (~3% of a sign-in's
        CPU), an ``httpx.URL`` not at all. The endpoints come from the discovery document."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 64:  # a provider whose endpoints keep moving: start over
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    @contextlib.contextmanager
    def passing_retry_after(self, response: httpx.Response) -> Iterator[None]:
        """A ``ProviderUnavailable`` raised for ``response`` carries the provider's
        ``Retry-After`` (whole seconds) on to our own answer."""
        try:
            yield
        except ProviderUnavailable as error:
            after = retry_after_seconds(response.headers, self._clock.now())
            if after is not None:
                error.extra["retry_after"] = max(1, math.ceil(after))
            raise

    async def get(self, name: str, url: str) -> httpx.Response:
        """A document (discovery, keys): retried while transient; anything but 200 raises."""
        response = await self._send(
            name,
            lambda: self._http.get(self._url(url)),
            retry_response=transient_response,
            retry_exception=transport_failure,
        )
        if response.status_code != 200:
            error = parse_error_body(response.content)
            if is_transient(response.status_code, error):
                with self.passing_retry_after(response):
                    raise ProviderUnavailable(
                        f"The provider's {name} endpoint is unavailable "
                        f"(HTTP {response.status_code}).",
                        provider_status=response.status_code,
                    )
            raise ProviderError(
                f"The provider's {name} endpoint answered HTTP {response.status_code}.",
                provider_status=response.status_code,
            )
        return response

    async def post(
        self,
        name: str,
        url: str,
        form: dict[str, str],
        *,
        retry_response: RetryResponse,
        retry_exception: RetryException,
        time_limit: float | None = None,
    ) -> httpx.Response:
        """A form POST, retried only as the caller's predicates allow; the answer is the
        caller's to read, whatever its status."""
        limit = httpx.Timeout(time_limit) if time_limit is not None else httpx.USE_CLIENT_DEFAULT
        parsed = self._url(url)
        return await self._send(
            name,
            lambda: self._http.post(parsed, data=form, timeout=limit),
            retry_response=retry_response,
            retry_exception=retry_exception,
        )

    async def _send(
        self,
        name: str,
        request: Callable[[], Awaitable[httpx.Response]],
        *,
        retry_response: RetryResponse,
        retry_exception: RetryException,
    ) -> httpx.Response:
        attempt = 0

        async def timed() -> httpx.Response:
            nonlocal attempt
            attempt += 1
            started = time.perf_counter()
            with span(f"grantkeeper.provider.{name}", attempt=attempt) as current:
                try:
                    response = await request()
                except httpx.TransportError as error:
                    _log_call(name, attempt, started, type(error).__name__)
                    raise
                current.set_attribute("http.response.status_code", response.status_code)
            _log_call(name, attempt, started, f"HTTP {response.status_code}")
            return response

        try:
            return await send_with_retries(
                timed,
                policy=self._retry,
                retry_response=retry_response,
                retry_exception=retry_exception,
                now=self._clock.now,
            )
        except httpx.TransportError as error:
            timed_out = isinstance(error, httpx.TimeoutException)
            kind = ProviderTimeout if timed_out else ProviderUnavailable
            what = "did not answer in time" if timed_out else "could not be reached"
            failure = kind(
                f"The provider's {name} endpoint {what} "
                f"({type(error).__name__} after {attempt} attempt(s))."
            )
            failure.request_sent = not isinstance(error, NEVER_SENT)
            raise failure from None


def never(_: object) -> bool:
    """The retry rule of a single attempt."""
    return False


def transient_response(response: httpx.Response) -> bool:
    """Whether an answer is worth another attempt (408, 429, 5xx, Google's transient codes)."""
    if response.status_code < 400:
        return False
    return is_transient(response.status_code, parse_error_body(response.content))


def transport_failure(error: BaseException) -> bool:
    # Timeouts, refused or reset connections, a peer that hung up mid-answer.
    return isinstance(error, httpx.TransportError)


def json_or_raise(name: str, response: httpx.Response) -> Any:
    """The response's JSON document, or ``ProviderError`` naming the endpoint."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise ProviderError(f"The provider's {name} document is not JSON.") from None


def _log_call(name: str, attempt: int, started: float, outcome: str) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "provider %s attempt %d: %s in %.0f ms",
        name,
        attempt,
        outcome,
        elapsed_ms,
        extra={"provider_call": name, "attempt": attempt, "outcome": outcome, "ms": elapsed_ms},
    )
