"""The JWKS cache's decisions, JWKS parsing, Retry-After and the tenacity retry loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from grantkeeper.errors import ProviderError
from grantkeeper.oauth.jwks import JwksCache, KeyLookup, parse_jwks
from grantkeeper.oauth.retry import RetryPolicy, retry_after_seconds, send_with_retries

from .conftest import NOW


def test_parse_jwks_keeps_rs256_signing_keys_only(signing_key: RSAKey) -> None:
    public = signing_key.as_dict(private=False)
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec"}).as_dict(private=False)
    document = {
        "keys": [
            public,
            ec,
            {**public, "kid": "enc", "use": "enc"},
            {**public, "kid": "ps", "alg": "PS256"},
            {**public, "kid": None},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "garbage",
        ]
    }
    keys = parse_jwks(document)
    assert list(keys) == [signing_key.kid]
    assert keys["a" * 40].is_private is False


def test_parse_jwks_drops_private_members(signing_key: RSAKey) -> None:
    keys = parse_jwks({"keys": [signing_key.as_dict(private=True)]})
    assert keys["a" * 40].is_private is False


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "oct"}]}])
def test_parse_jwks_rejects_useless_documents(document: object) -> None:
    with pytest.raises(ProviderError):
        parse_jwks(document)


def test_cache_plan(signing_key: RSAKey) -> None:
    cache = JwksCache(min_refetch_interval=30)
    assert cache.plan("k", NOW) is KeyLookup.FETCH
    cache.store({"k": signing_key}, lifetime=3600, now=NOW)
    assert cache.plan("k", NOW + timedelta(seconds=10)) is KeyLookup.USE_CACHE
    # Unknown kid: a re-fetch, but not more often than every 30 s.
    assert cache.plan("new", NOW + timedelta(seconds=29)) is KeyLookup.UNKNOWN_KID
    assert cache.plan("new", NOW + timedelta(seconds=30)) is KeyLookup.FETCH
    # Expired: always re-fetch.
    assert cache.plan("k", NOW + timedelta(seconds=3600)) is KeyLookup.FETCH


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "7"}), NOW) == 7.0
    later = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": later}), NOW) == 12.0
    earlier = format_datetime(NOW - timedelta(seconds=12), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": earlier}), NOW) == 0.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"}), NOW) is None
    assert retry_after_seconds(httpx.Headers({}), NOW) is None


class Recorder:
    """Collects the waits tenacity asks for; nothing really sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def answers(
    *items: httpx.Response | Exception,
) -> tuple[Callable[[], Awaitable[httpx.Response]], list[int]]:
    queue = list(items)
    calls: list[int] = []

    async def send() -> httpx.Response:
        calls.append(1)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return send, calls


def retry_5xx(response: httpx.Response) -> bool:
    return response.status_code >= 500 or response.status_code == 429


async def retried(
    send: Callable[[], Awaitable[httpx.Response]],
    policy: RetryPolicy,
    retry_exception: Callable[[BaseException], bool] = lambda e: True,
) -> httpx.Response:
    """``send_with_retries`` with 5xx and 429 answers retried, on the tests' clock."""
    return await send_with_retries(
        send,
        policy=policy,
        retry_response=retry_5xx,
        retry_exception=retry_exception,
        now=lambda: NOW,
    )


@pytest.mark.anyio
async def test_backoff_grows_and_the_last_response_is_returned() -> None:
    recorder = Recorder()
    send, calls = answers(httpx.Response(500), httpx.Response(500), httpx.Response(502))
    policy = RetryPolicy(attempts=3, multiplier=0.5, jitter=0.0, sleep=recorder.sleep)
    response = await retried(send, policy)
    assert response.status_code == 502
    assert len(calls) == 3
    assert recorder.waits == [0.5, 1.0]


@pytest.mark.anyio
async def test_retry_after_is_honoured_and_too_long_stops() -> None:
    recorder = Recorder()
    send, calls = answers(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200))
    policy = RetryPolicy(attempts=3, jitter=0.0, sleep=recorder.sleep)
    response = await retried(send, policy)
    assert response.status_code == 200
    assert recorder.waits == [3.0]

    recorder = Recorder()
    send, calls = answers(httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200))
    policy = RetryPolicy(attempts=3, max_retry_after=30, sleep=recorder.sleep)
    response = await retried(send, policy)
    assert response.status_code == 503
    assert len(calls) == 1
    assert recorder.waits == []


@pytest.mark.anyio
async def test_exceptions_retry_or_propagate_by_predicate() -> None:
    recorder = Recorder()
    request = httpx.Request("POST", "https://x.test/token")
    send, calls = answers(httpx.ConnectError("refused", request=request), httpx.Response(200))
    policy = RetryPolicy(sleep=recorder.sleep)
    response = await retried(send, policy, lambda e: isinstance(e, httpx.ConnectError))
    assert response.status_code == 200
    assert len(calls) == 2

    send, calls = answers(httpx.ReadTimeout("slow", request=request), httpx.Response(200))
    with pytest.raises(httpx.ReadTimeout):
        await retried(send, policy, lambda e: isinstance(e, httpx.ConnectError))
    assert len(calls) == 1


@pytest.mark.anyio
async def test_an_attempt_not_worth_retrying_never_reaches_the_retry_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from grantkeeper.oauth import retry

    def no_retrying(*args: object) -> None:
        raise AssertionError("tenacity's rule was built for a call that needed no retry")

    monkeypatch.setattr(retry, "_retrying", no_retrying)
    request = httpx.Request("POST", "https://x.test/token")
    send, calls = answers(httpx.Response(400), httpx.ReadTimeout("slow", request=request))
    for _ in range(2):  # a final answer, then an exception the rule does not retry
        try:
            response = await retried(
                send, RetryPolicy(attempts=3), lambda e: isinstance(e, httpx.ConnectError)
            )
        except httpx.ReadTimeout:
            continue
        assert response.status_code == 400
    assert len(calls) == 2


@pytest.mark.anyio
async def test_a_single_attempt_budget_returns_or_raises_the_first_outcome() -> None:
    recorder = Recorder()
    request = httpx.Request("POST", "https://x.test/token")
    send, calls = answers(
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused", request=request),
    )
    policy = RetryPolicy(attempts=1, sleep=recorder.sleep)
    response = await retried(send, policy)
    assert response.status_code == 503
    with pytest.raises(httpx.ConnectError):
        await retried(send, policy)
    assert len(calls) == 2
    assert recorder.waits == []


@pytest.mark.anyio
async def test_a_failure_on_every_attempt_raises_the_last_one_after_the_backoff() -> None:
    recorder = Recorder()
    request = httpx.Request("POST", "https://x.test/token")
    send, calls = answers(
        httpx.ConnectError("first", request=request),
        httpx.ConnectError("second", request=request),
        httpx.ConnectError("third", request=request),
    )
    policy = RetryPolicy(attempts=3, multiplier=0.5, jitter=0.0, sleep=recorder.sleep)
    with pytest.raises(httpx.ConnectError, match="third"):
        await retried(send, policy)
    assert len(calls) == 3
    assert recorder.waits == [0.5, 1.0]


def test_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.anyio
async def test_an_endpoint_is_parsed_once_and_the_parsed_urls_stay_few() -> None:
    from grantkeeper.clock import SYSTEM_CLOCK
    from grantkeeper.oauth.provider_calls import ProviderCalls, never

    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        calls = ProviderCalls(http, SYSTEM_CLOCK, RetryPolicy())
        for _ in range(2):
            await calls.post(
                "token",
                "https://x.test/token?a=1",
                {"k": "v"},
                retry_response=never,
                retry_exception=never,
            )
        assert calls._url("https://x.test/token?a=1") is calls._url("https://x.test/token?a=1")
        for i in range(100):  # endpoints that keep moving: the map is bounded
            assert str(calls._url(f"https://x.test/{i}")) == f"https://x.test/{i}"
        assert len(calls._urls) <= 64
        await calls.get("jwks", "https://x.test/certs")
    assert [str(u) for u in seen] == [
        "https://x.test/token?a=1",
        "https://x.test/token?a=1",
        "https://x.test/certs",
    ]
