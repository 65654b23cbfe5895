"""The management API behind a manage key: users by state (paged), one user's grant and
history, the audit log (paged, filtered); every answer as the OpenAPI document says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from grantkeeper.errors import InvalidRequest
from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import World
from .test_openapi_contract import conforms
from .test_signin_api import XRW, problem

pytestmark = pytest.mark.anyio

ADMIN = "admin-key-0123456789abcdef"
WORKER = "worker-key-0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def manage(keeper: Keeper) -> AsyncIterator[httpx.AsyncClient]:
    keeper.settings = keeper.settings.model_copy(
        update={"service_api_keys": [f"admin:{ADMIN};ops=manage", f"worker:{WORKER}"]}
    )
    transport = httpx.ASGITransport(app=create_app(keeper))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as api:
        yield api


async def sign_in_users(api: httpx.AsyncClient, world: World, count: int) -> list[str]:
    subs = []
    for n in range(count):
        email = f"user{n}@example.com"
        world.emulator.control.create_user(email, name=f"User {n}")
        answer = await api.post(
            "/v1/google/signin", json={"code": world.code(email=email)}, headers=XRW
        )
        assert answer.status_code == 200, answer.text
        subs.append(answer.json()["user"]["sub"])
    return subs


async def test_paging_through_users_by_state(manage: httpx.AsyncClient, world: World) -> None:
    spec = (await manage.get("/openapi.json")).json()
    subs = await sign_in_users(manage, world, 5)
    gone = (await manage.delete(f"/v1/users/{subs[2]}/grant", headers=bearer(WORKER))).json()
    assert gone["revoked_at_provider"]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = conforms(
            spec,
            await manage.get("/v1/manage/users", params=params, headers=bearer(ADMIN)),
            "/v1/manage/users",
        )
        pages += 1
        seen += [user["sub"] for user in page["users"]]
        after = page["next"]
        if after is None:
            break
    assert pages == 3
    assert seen == sorted(subs)
    by_state = await manage.get(
        "/v1/manage/users", params={"status": "disconnected"}, headers=bearer(ADMIN)
    )
    only = by_state.json()["users"]
    assert [u["sub"] for u in only] == [subs[2]]
    assert only[0]["grants"][0]["status"] == "disconnected"
    active = await manage.get(
        "/v1/manage/users", params={"status": "active", "limit": 500}, headers=bearer(ADMIN)
    )
    assert sorted(u["sub"] for u in active.json()["users"]) == sorted(set(subs) - {subs[2]})
    problem(
        await manage.get("/v1/manage/users", params={"status": "odd"}, headers=bearer(ADMIN)),
        400,
        "invalid_request",
    )
    problem(
        await manage.get("/v1/manage/users", params={"limit": 0}, headers=bearer(ADMIN)),
        400,
        "invalid_request",
    )


async def test_one_user_with_history_and_the_audit_log(
    manage: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    spec = (await manage.get("/openapi.json")).json()
    (sub,) = await sign_in_users(manage, world, 1)
    token = (await manage.get(f"/v1/users/{sub}/token", headers=bearer(WORKER))).json()
    await manage.post(
        f"/v1/users/{sub}/token/refresh",
        json={"rejected_token": token["access_token"]},
        headers=bearer(WORKER),
    )
    detail = conforms(
        spec,
        await manage.get(f"/v1/manage/users/{sub}", headers=bearer(ADMIN)),
        "/v1/manage/users/{sub}",
    )
    assert detail["user"]["sub"] == sub
    assert detail["grants"][0]["status"] == "active"
    kinds = [(e["kind"], e["outcome"]) for e in detail["history"]]
    assert kinds[:3] == [("token", "refreshed"), ("refresh", "ok"), ("token", "ok")]
    assert ("sign_in", "ok") in kinds
    assert detail["history"][0]["detail"]["caller"] == "worker"
    problem(await manage.get("/v1/manage/users/nobody", headers=bearer(ADMIN)), 404, "unknown_user")

    url = "/v1/manage/audit"
    everything = conforms(
        spec, await manage.get(url, params={"sub": sub}, headers=bearer(ADMIN)), url
    )
    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids, reverse=True)
    first = conforms(
        spec, await manage.get(url, params={"sub": sub, "limit": 2}, headers=bearer(ADMIN)), url
    )
    rest = (
        await manage.get(
            url, params={"sub": sub, "before": first["next"], "limit": 100}, headers=bearer(ADMIN)
        )
    ).json()
    assert [e["id"] for e in first["events"] + rest["events"]] == ids
    assert rest["next"] is None
    refreshes = (await manage.get(url, params={"kind": "refresh"}, headers=bearer(ADMIN))).json()[
        "events"
    ]
    assert {e["kind"] for e in refreshes} == {"refresh"}
    now = keeper.clock.now()
    future = (now + timedelta(hours=1)).astimezone(UTC).isoformat()
    assert (await manage.get(url, params={"since": future}, headers=bearer(ADMIN))).json()[
        "events"
    ] == []
    past = datetime(2000, 1, 1, tzinfo=UTC).isoformat()
    assert (await manage.get(url, params={"until": past}, headers=bearer(ADMIN))).json()[
        "events"
    ] == []
    body = " ".join([str(detail), str(everything), str(rest)])
    assert token["access_token"] not in body


async def test_only_a_manage_key_gets_in(manage: httpx.AsyncClient) -> None:
    refused = problem(
        await manage.get("/v1/manage/users", headers=bearer(WORKER)), 403, "service_key_limit"
    )
    assert refused["limit"] == "operation"
    assert refused["key"] == "worker"
    problem(await manage.get("/v1/manage/audit"), 401, "unauthorized")
    problem(await manage.get("/v1/users/1/token", headers=bearer(ADMIN)), 403, "service_key_limit")


async def test_a_cursor_out_of_range_is_a_clear_400(manage: httpx.AsyncClient) -> None:
    """make fuzz found ``before=-68972734580127700954906624`` answered 500 (neither store can
    bind it): a cursor outside an audit id's (or an outbox seq's) 64-bit range is invalid input
    on both stores."""
    for path in ("/v1/manage/audit", "/v1/manage/webhooks"):
        for cursor in (2**63, -(2**80), 0):
            refused = problem(
                await manage.get(path, params={"before": cursor}, headers=bearer(ADMIN)),
                400,
                "invalid_request",
            )
            assert "before" in refused["detail"]
        largest = await manage.get(path, params={"before": 2**63 - 1}, headers=bearer(ADMIN))
        assert largest.status_code == 200, largest.text


async def test_audit_times_beyond_the_calendar_in_utc_are_a_clear_400(
    manage: httpx.AsyncClient,
) -> None:
    """make fuzz found ``until=0001-01-01T00:00:00+00:23`` answered 500: in UTC it is before
    the year 1."""
    for name, value in (
        ("until", "0001-01-01T00:00:00+00:23"),
        ("since", "9999-12-31T23:59:59-01:00"),
    ):
        refused = problem(
            await manage.get("/v1/manage/audit", params={name: value}, headers=bearer(ADMIN)),
            400,
            "invalid_request",
        )
        assert name in refused["detail"]
    fine = await manage.get(
        "/v1/manage/audit", params={"since": "0001-01-01T00:00:00-00:23"}, headers=bearer(ADMIN)
    )
    assert fine.status_code == 200, fine.text


async def test_a_user_id_with_a_control_character_is_a_clear_400_on_every_route(
    manage: httpx.AsyncClient, keeper: Keeper
) -> None:
    """PostgreSQL refuses a NUL in a text parameter: such an id once got a 500 there and a 404
    on SQLite. Google's sub is printable ASCII, so every store now answers the same 400."""
    for method, url, key in [
        ("GET", "/v1/users/x%00/token", WORKER),
        ("POST", "/v1/users/x%00/token/refresh", WORKER),
        ("DELETE", "/v1/users/x%00/grant", WORKER),
        ("GET", "/v1/manage/users/x%00", ADMIN),
        ("GET", "/v1/manage/users?after=x%00", ADMIN),
        ("GET", "/v1/manage/audit?sub=x%0A", ADMIN),
    ]:
        response = await manage.request(method, url, headers=bearer(key))
        assert response.status_code == 400, (url, response.text)
        assert response.json()["code"] == "invalid_request", url
        assert "control character" in response.json()["detail"]
    with pytest.raises(InvalidRequest, match="control character"):
        await keeper.audit("x\x00")
    assert (await manage.get("/v1/users/x%20y/token", headers=bearer(WORKER))).status_code == 404
