"""Rate limits: per client address on sign-in (through trusted proxies only), per service key on
the token API; 429 problem+json with Retry-After; junk codes cannot flood Google."""

from __future__ import annotations

import httpx
import pytest

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app
from grantkeeper.web.rate_limits import RateLimiter

from ..keeper.conftest import World
from .conftest import SERVICE_KEY
from .test_signin_api import XRW, problem

pytestmark = pytest.mark.anyio


def client_for(keeper: Keeper, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(keeper), client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="https://keeper.test")


async def test_junk_codes_from_one_address_are_limited_before_google(
    keeper: Keeper, world: World
) -> None:
    keeper.settings = keeper.settings.model_copy(update={"signin_rate_per_minute": 3})
    app = create_app(keeper)
    attacker = httpx.ASGITransport(app=app, client=("198.51.100.66", 5000))
    async with httpx.AsyncClient(transport=attacker, base_url="https://keeper.test") as api:
        answers = [
            await api.post(
                "/v1/google/signin",
                json={"code": f"4/0junk{n}"},
                # An outsider's X-Forwarded-For is not believed: it cannot pick a fresh bucket.
                headers={**XRW, "X-Forwarded-For": f"10.0.0.{n}"},
            )
            for n in range(10)
        ]
    assert [a.status_code for a in answers] == [400] * 3 + [429] * 7
    limited = problem(answers[-1], 429, "rate_limited")
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert "minute" in limited["detail"]
    assert world.exchanges() <= 3
    # Another address has its own budget.
    other = httpx.ASGITransport(app=app, client=("198.51.100.77", 5000))
    async with httpx.AsyncClient(transport=other, base_url="https://keeper.test") as api:
        fine = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    assert fine.status_code == 200, fine.text


async def test_the_token_api_is_limited_per_service_key(keeper: Keeper, world: World) -> None:
    keeper.settings = keeper.settings.model_copy(
        update={"service_api_keys": [SERVICE_KEY], "token_rate_per_minute": 2}
    )
    await keeper.sign_in(world.code())
    async with client_for(keeper, "203.0.113.8") as api:
        auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
        wrong = {"Authorization": "Bearer wrong-key-wrong-key-wrong"}
        assert (await api.get(f"/v1/users/{world.sub}/token", headers=wrong)).status_code == 401
        codes = [
            (await api.get(f"/v1/users/{world.sub}/token", headers=auth)).status_code
            for _ in range(3)
        ]
        last = await api.get(f"/v1/users/{world.sub}/token", headers=auth)
    assert codes == [200, 200, 429]
    problem(last, 429, "rate_limited")
    assert "retry-after" in last.headers


def test_the_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(60, what="test", clock=lambda: now[0])
    for _ in range(60):
        limiter.hit("a")
    with pytest.raises(Exception, match="Too many"):
        limiter.hit("a")
    now[0] += 1.0  # one request a second comes back
    limiter.hit("a")
    RateLimiter(0, what="off").hit("a")  # 0 disables
