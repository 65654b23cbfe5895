"""POST /v1/google/signin over HTTP: answers and every documented error."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import World, provider_of, store_of

pytestmark = pytest.mark.anyio

XRW = {"X-Requested-With": "com.example.photos"}


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["advice"]
    return body


async def test_sign_in_with_json(api: httpx.AsyncClient, world: World, keeper: Keeper) -> None:
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    assert body["user"]["sub"] == world.sub
    assert body["user"]["email"] == world.email
    assert body["grant"]["offline"] is True
    grant = await store_of(keeper).get_grant(world.sub)
    assert grant is not None
    assert grant.refresh_token
    assert grant.access_token
    assert grant.refresh_token not in response.text
    assert grant.access_token not in response.text


async def test_sign_in_with_a_form(api: httpx.AsyncClient, world: World) -> None:
    response = await api.post(
        "/v1/google/signin", data={"code": world.code(), "platform": "android"}, headers=XRW
    )
    assert response.status_code == 200, response.text


async def test_missing_x_requested_with_is_refused(api: httpx.AsyncClient, world: World) -> None:
    code = world.code()
    response = await api.post("/v1/google/signin", json={"code": code})
    problem(response, 403, "csrf_header_missing")
    assert world.exchanges() == 0
    # The code was not spent: the real app can still use it.
    again = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"json": {}}, "code"),
        ({"json": {"code": 42}}, "code"),
        ({"json": {"code": "4/0abc", "platform": "palm"}}, "platform"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "JSON"),
        ({"content": b"code=1", "headers": {"content-type": "text/plain"}}, "JSON"),
        ({"json": ["4/0abc"]}, "object"),
    ],
)
async def test_invalid_requests(
    api: httpx.AsyncClient, world: World, kwargs: dict[str, Any], fragment: str
) -> None:
    headers = {**XRW, **kwargs.pop("headers", {})}
    response = await api.post("/v1/google/signin", headers=headers, **kwargs)
    body = problem(response, 400, "invalid_request")
    assert fragment in body["detail"]


async def test_payload_too_large(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/google/signin", json={"code": "4/0" + "a" * 20000}, headers=XRW)
    problem(response, 413, "payload_too_large")


async def test_invalid_code_never_echoes_the_code(
    api: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "4/0AVMBsJiSECRETSECRETSECRETnotreal"
    response = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
    problem(response, 400, "invalid_code")
    assert "SECRETSECRET" not in response.text
    assert "SECRETSECRET" not in caplog.text


async def test_untrusted_id_token_says_which_check_failed_and_by_how_much(
    api: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.emulator.control.add_fault("id_token", id_token="wrong_aud", count=1)
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    body = problem(response, 401, "untrusted_id_token")
    assert body["check"] == "aud"
    assert body["reason"].startswith("audience")
    assert body["reason"] in body["detail"]
    assert "untrusted_id_token" in caplog.text
    assert body["reason"] in caplog.text  # the why is in the log too

    world.emulator.control.add_fault("id_token", id_token="iat_future", count=1)
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    body = problem(response, 401, "untrusted_id_token")
    assert body["check"] == "iat"
    assert " s in the future" in body["reason"]
    assert "leeway is 60 s" in body["reason"]


async def test_provider_answers_5xx_to_the_exchange(api: httpx.AsyncClient, world: World) -> None:
    world.emulator.control.add_fault("token", status=500, count=1)
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    # A 500 may hide a redeemed code: the app must sign the user in again, not retry it.
    problem(response, 503, "sign_in_incomplete")


async def test_provider_config_problem_is_502(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    # A code from the browser redirect flow, redeemed the popup way: redirect_uri_mismatch.
    from urllib.parse import parse_qs, urlencode, urlsplit

    redirect_uri = "http://127.0.0.1/"
    query = urlencode(
        {
            "client_id": world.web_client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid email",
            "access_type": "offline",
        }
    )
    location = world.emulator.control.authorize(f"/o/oauth2/v2/auth?{query}", world.email)
    code = parse_qs(urlsplit(location).query)["code"][0]
    response = await api.post(
        "/v1/google/signin", json={"code": code, "platform": "web"}, headers=XRW
    )
    body = problem(response, 502, "provider_error")
    assert "redirect" in body["detail"].lower()


async def test_provider_timeout_on_the_exchange_says_sign_in_again(
    keeper: Keeper, world: World
) -> None:
    provider_of(keeper)._http.timeout = httpx.Timeout(0.3)
    world.emulator.control.add_fault("token", delay_ms=1500, count=1)
    app = create_app(keeper)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as api:
        response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    # The request reached the provider, which may have redeemed the code: sign in again.
    body = problem(response, 503, "sign_in_incomplete")
    assert "did not answer in time" in body["detail"]


async def test_plain_http_is_refused_unless_a_trusted_proxy_says_https(
    keeper: Keeper, world: World
) -> None:
    app = create_app(keeper)
    untrusted = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=untrusted, base_url="http://keeper.test") as api:
        response = await api.post(
            "/v1/google/signin",
            json={"code": world.code()},
            headers={**XRW, "X-Forwarded-Proto": "https"},
        )
    problem(response, 403, "https_required")
    proxy = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=proxy, base_url="http://keeper.test") as api:
        response = await api.post(
            "/v1/google/signin",
            json={"code": world.code()},
            headers={**XRW, "X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 200, response.text


async def test_store_unavailable_is_503(keeper: Keeper, world: World) -> None:
    from grantkeeper.store import GrantStore
    from grantkeeper.store.engine import create_engine, normalize_url

    dead = GrantStore(
        create_engine(normalize_url("postgresql://postgres@127.0.0.1:1/none")),
        store_of(keeper).keyring,
        keeper.clock,
    )
    broken = Keeper(keeper.settings, clock=keeper.clock, store=dead, provider=provider_of(keeper))
    await broken.open()
    app = create_app(broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
    ) as api:
        response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
        ready = await api.get("/readyz")
    await dead.close()
    problem(response, 503, "store_unavailable")
    assert ready.status_code == 503


async def test_unknown_route_is_a_problem_document(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_the_endpoints(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert "/v1/google/signin" in spec["paths"]
    assert "/v1/users/{sub}/token" in spec["paths"]
    assert (await api.get("/docs")).status_code == 200


async def test_metrics_count_sign_ins_by_outcome_and_provider_latency(
    api: httpx.AsyncClient, world: World
) -> None:
    def count(text: str, outcome: str) -> float:
        prefix = f'grantkeeper_sign_ins_total{{outcome="{outcome}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = (await api.get("/metrics")).text
    await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    await api.post("/v1/google/signin", json={"code": "4/0notacode"}, headers=XRW)
    after = (await api.get("/metrics")).text
    assert count(after, "ok") == count(before, "ok") + 1
    assert count(after, "invalid_code") == count(before, "invalid_code") + 1
    assert 'grantkeeper_provider_request_seconds_count{endpoint="token"}' in after


async def test_readyz_reports_tokens_sealed_with_a_key_the_ring_lacks(
    keeper: Keeper, world: World, store_target: Any
) -> None:
    from grantkeeper.crypto import KeyRing, generate_key

    await keeper.sign_in(world.code())
    other_ring = KeyRing.from_strings([generate_key("newkey")])
    store = await store_target.open(other_ring, keeper.clock)
    try:
        async with Keeper(keeper.settings, clock=keeper.clock, store=store) as wrong:
            app = create_app(wrong)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
            ) as api:
                ready = await api.get("/readyz")
    finally:
        await store.close()
    assert ready.status_code == 503
    assert "primary" in ready.text  # the fixture ring's key id, named so the operator can act
    assert "token_undecryptable" in ready.text
