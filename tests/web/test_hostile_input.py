"""What an attack run sent the HTTP API: each gets a clear 4xx (both stores), nothing a 500."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from grantkeeper.errors import InvalidRequest
from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import World, provider_of, store_of
from .conftest import SERVICE_KEY
from .test_signin_api import problem

pytestmark = pytest.mark.anyio

XRW = {"X-Requested-With": "com.example.photos", "content-type": "application/json"}


async def test_deeply_nested_json_is_a_clear_400(api: httpx.AsyncClient, world: World) -> None:
    """D3: ~3,000 levels within the size limit used to end in RecursionError (500)."""
    body = b'{"code": "4/0A", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    assert len(body) < 16_384
    response = await api.post("/v1/google/signin", content=body, headers=XRW)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "nested" in response.json()["detail"]
    assert world.exchanges() == 0


async def test_lone_surrogate_is_a_clear_400(api: httpx.AsyncClient, world: World) -> None:
    """D4: ``{"code":"4/0A\\ud800"}`` used to fail encoding the code (500)."""
    response = await api.post("/v1/google/signin", content=b'{"code":"4/0A\\ud800"}', headers=XRW)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "surrogate" in response.json()["detail"]
    assert world.exchanges() == 0


async def test_the_library_refuses_a_lone_surrogate_too(keeper: Keeper) -> None:
    with pytest.raises(InvalidRequest, match="Unicode"):
        await keeper.sign_in("4/0A\ud800")


# -- D5: a spent code that cannot be completed says so --------------------------------------


async def test_keys_unreachable_after_rotation_says_sign_in_again(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    first = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    assert first.status_code == 200  # the keeper now caches the JWKS
    world.emulator.control.rotate_keys()
    world.emulator.control.advance_clock(60)  # past the JWKS re-fetch rate limit
    world.emulator.control.add_fault("certs", status=500, count=None)
    try:
        code = world.code()
        response = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
        body = problem(response, 503, "sign_in_incomplete")
        assert "sign the user in again" in body["advice"].lower()
        assert "retry later" not in response.text.lower()
        # What the answer said is true: the same code cannot succeed.
        again = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
        problem(again, 400, "invalid_code")
    finally:
        world.emulator.control.clear_faults()


async def test_an_exchange_answer_lost_says_sign_in_again(
    api: httpx.AsyncClient, world: World
) -> None:
    # A 500 from the token endpoint may hide a redeemed code (it is never retried).
    world.emulator.control.add_fault("token", status=500, count=1)
    response = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    body = problem(response, 503, "sign_in_incomplete")
    assert "Nothing was stored" in body["advice"]


async def test_a_provider_refusal_before_processing_keeps_retry_later(
    api: httpx.AsyncClient, world: World
) -> None:
    # 503 with a long Retry-After: the code was not redeemed; retry later is true and the
    # provider's Retry-After is passed on.
    world.emulator.control.add_fault("token", status=503, headers={"Retry-After": "120"}, count=1)
    code = world.code()
    response = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
    problem(response, 503, "provider_unavailable")
    assert response.headers["retry-after"] == "120"
    again = await api.post("/v1/google/signin", json={"code": code}, headers=XRW)
    assert again.status_code == 200, again.text


async def test_retry_after_of_a_failing_refresh_is_passed_on(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    signed = await api.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    sub = signed.json()["user"]["sub"]
    world.emulator.control.advance_clock(3600)
    world.emulator.control.add_fault("token", status=503, headers={"Retry-After": "90"}, count=1)
    response = await api.get(
        f"/v1/users/{sub}/token", headers={"Authorization": f"Bearer {SERVICE_KEY}"}
    )
    problem(response, 503, "provider_unavailable")
    assert response.headers["retry-after"] == "90"


# -- D6: public bodies name no infrastructure ------------------------------------------------


async def test_store_down_names_no_infrastructure(
    keeper: Keeper, world: World, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from grantkeeper.store import GrantStore
    from grantkeeper.store.engine import create_engine, normalize_url

    caplog.set_level(logging.INFO)
    empty = tmp_path / "private-dir" / "no-tables.sqlite3"
    for url, secrets_of_the_url in (
        ("postgresql://gkuser@127.0.0.1:1/gkdatabase", ("gkuser", "127.0.0.1", "gkdatabase")),
        (f"sqlite:///{empty}", ("private-dir", "no-tables")),
    ):
        dead = GrantStore(create_engine(normalize_url(url)), store_of(keeper).keyring, keeper.clock)
        broken = Keeper(
            keeper.settings, clock=keeper.clock, store=dead, provider=provider_of(keeper)
        )
        await broken.open()
        app = create_app(broken)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
        ) as client:
            response = await client.post(
                "/v1/google/signin", json={"code": world.code()}, headers=XRW
            )
            ready = await client.get("/readyz")
        await dead.close()
        problem(response, 503, "store_unavailable")
        assert ready.status_code == 503
        for text in secrets_of_the_url:
            assert text not in response.text, url
            assert text not in ready.text, url
        # The operator still learns where: in the log.
        assert secrets_of_the_url[0] in caplog.text


# -- D7: over-long claims: one behaviour on both stores ----------------------------------------


async def test_over_long_profile_claims_sign_in_on_both_stores(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    email = "longname@example.com"
    world.emulator.control.create_user(
        email, name="N" * 600, given_name="G" * 300, locale="x" * 100
    )
    response = await api.post(
        "/v1/google/signin", json={"code": world.code(email=email)}, headers=XRW
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert len(user["name"]) == 512
    assert user["name"].endswith("\u2026")
    assert len(user["given_name"]) == 255
    assert user["locale"] is None
    stored = await store_of(keeper).get_user(user["sub"])
    assert stored is not None
    assert stored.name == user["name"]
    grant = await store_of(keeper).get_grant(user["sub"])
    assert grant is not None
    assert grant.refresh_token  # the answer (the grant) was not lost


# -- D8: control characters in request paths are escaped in the keeper's log -------------------


async def test_control_characters_in_paths_are_escaped_in_logs(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grantkeeper")
    path = "/v1/users/%1B%5B31mRED%E2%80%A8FAKE%C2%85LINE%0A/token"
    response = await api.get(path)
    assert response.status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "grantkeeper.web"]
    assert lines
    text = "\n".join(lines)
    for raw in ("\x1b", "\u2028", "\x85", "\nLINE"):
        assert raw not in text
    assert "\\x1b[31mRED\\u2028FAKE\\x85LINE" in text


# -- sign-ins refused before the provider are counted ------------------------------------------


async def test_refusals_before_the_provider_are_counted(api: httpx.AsyncClient) -> None:
    def count(text: str, outcome: str) -> float:
        prefix = f'grantkeeper_sign_ins_total{{outcome="{outcome}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = (await api.get("/metrics")).text
    await api.post("/v1/google/signin", json={"code": "4/0x"})
    await api.post("/v1/google/signin", json={}, headers=XRW)
    await api.post("/v1/google/signin", json={"code": "4/0 x"}, headers=XRW)
    after = (await api.get("/metrics")).text
    assert count(after, "csrf_header_missing") == count(before, "csrf_header_missing") + 1
    assert count(after, "invalid_request") == count(before, "invalid_request") + 2


# -- D2: a spent code is no identity bearer ----------------------------------------------------


async def test_idempotency_key_decides_who_gets_a_spent_codes_answer(
    api: httpx.AsyncClient, world: World
) -> None:
    code = world.code()
    key = {"Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}
    first = await api.post("/v1/google/signin", json={"code": code}, headers={**XRW, **key})
    assert first.status_code == 200, first.text
    assert first.json()["replayed"] is False
    for other in ({}, {"Idempotency-Key": "another-key"}):
        stolen = await api.post("/v1/google/signin", json={"code": code}, headers={**XRW, **other})
        problem(stolen, 400, "invalid_code")
        assert world.sub not in stolen.text
        assert world.email not in stolen.text
    again = await api.post("/v1/google/signin", json={"code": code}, headers={**XRW, **key})
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert again.json()["user"] == first.json()["user"]
    assert world.exchanges() == 1


@pytest.mark.parametrize("bad", ['""', "x" * 300, "caf\u00e9"])
async def test_a_malformed_idempotency_key_is_a_clear_400(
    api: httpx.AsyncClient, world: World, bad: str
) -> None:
    response = await api.post(
        "/v1/google/signin",
        json={"code": world.code()},
        headers={**XRW, "Idempotency-Key": bad.encode("utf-8")},
    )
    body = problem(response, 400, "invalid_request")
    assert "Idempotency-Key" in body["detail"]
    assert world.exchanges() == 0


# -- D9: who may read the operations endpoints -------------------------------------------------

OPS = ("/metrics", "/readyz", "/docs", "/openapi.json")


async def ops_answers(keeper: Keeper, base: str, **headers: str) -> dict[str, int]:
    app = create_app(keeper)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        return {path: (await client.get(path, headers=headers)).status_code for path in OPS}


async def test_a_strict_keeper_serves_ops_endpoints_only_over_https(keeper: Keeper) -> None:
    keeper.settings = keeper.settings.model_copy(update={"allow_insecure_http": False})
    assert set((await ops_answers(keeper, "http://keeper.test")).values()) == {403}
    assert set((await ops_answers(keeper, "https://keeper.test")).values()) == {200}
    app = create_app(keeper)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://keeper.test"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_an_ops_key_guards_the_ops_endpoints(keeper: Keeper) -> None:
    ops_key = "ops-key-0123456789abcdef"
    keeper.settings = keeper.settings.model_copy(
        update={"allow_insecure_http": False, "ops_key": ops_key}
    )
    https = "https://keeper.test"
    assert set((await ops_answers(keeper, https)).values()) == {401}
    wrong = {"Authorization": "Bearer not-the-ops-key-at-all"}
    assert set((await ops_answers(keeper, https, **wrong)).values()) == {401}
    right = {"Authorization": f"Bearer {ops_key}"}
    assert set((await ops_answers(keeper, https, **right)).values()) == {200}
    assert set((await ops_answers(keeper, "http://keeper.test", **right)).values()) == {403}


async def test_ops_public_opens_them_on_a_private_network(keeper: Keeper) -> None:
    keeper.settings = keeper.settings.model_copy(
        update={"allow_insecure_http": False, "ops_public": True}
    )
    assert set((await ops_answers(keeper, "http://keeper.test")).values()) == {200}
