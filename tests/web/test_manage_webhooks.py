"""The management API's webhook deliveries: listed by state a page at a time, replayed by id,
behind a manage key; every answer as the OpenAPI document says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from grantkeeper.crypto import KeyRing
from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app
from grantkeeper.webhooks import WebhookSender, generate_secret

from ..app_world import World, quick_provider
from ..conftest import StoreTarget
from ..lifecycle.webhook_sink import WebhookSink, webhook_sink
from .test_manage_api import ADMIN, WORKER, bearer, sign_in_users
from .test_openapi_contract import conforms
from .test_signin_api import problem

pytestmark = pytest.mark.anyio


async def no_wait(_: float) -> None:
    return None


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as receiving:
        yield receiving


@pytest.fixture
async def notifying(
    world: World, store_target: StoreTarget, store_keyring: KeyRing, sink: WebhookSink
) -> AsyncIterator[Keeper]:
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    provider = quick_provider(world.settings, clock)
    settings = world.settings.model_copy(
        update={
            "service_api_keys": [f"admin:{ADMIN};ops=manage", f"worker:{WORKER}"],
            "webhook_max_attempts": 1,
        }
    )
    keeper = Keeper(
        settings,
        clock=clock,
        store=store,
        provider=provider,
        sleep=no_wait,
        webhooks=WebhookSender(sink.url, generate_secret()),
    )
    try:
        async with keeper:
            yield keeper
    finally:
        await provider.aclose()
        await store.close()


@pytest.fixture
async def api(notifying: Keeper) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(notifying))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as client:
        yield client


async def test_deliveries_listed_by_state_and_a_failed_one_replayed(
    api: httpx.AsyncClient, notifying: Keeper, world: World, sink: WebhookSink
) -> None:
    spec = (await api.get("/openapi.json")).json()
    subs = await sign_in_users(api, world, 3)
    for sub in subs:
        gone = await api.delete(f"/v1/users/{sub}/grant", headers=bearer(WORKER))
        assert gone.status_code == 200, gone.text
    url = "/v1/manage/webhooks"
    first = conforms(spec, await api.get(url, params={"limit": 2}, headers=bearer(ADMIN)), url)
    assert [w["state"] for w in first["webhooks"]] == ["pending", "pending"]
    rest = conforms(
        spec,
        await api.get(url, params={"before": first["next"], "limit": 2}, headers=bearer(ADMIN)),
        url,
    )
    assert rest["next"] is None
    listed = first["webhooks"] + rest["webhooks"]
    assert len({w["id"] for w in listed}) == 3
    assert {w["type"] for w in listed} == {"grant.revoked"}

    sink.statuses = [500, 204, 204]  # one answer fails; with one attempt allowed it is failed
    assert (await notifying.deliver_webhooks()).failed == 1
    failed = conforms(
        spec, await api.get(url, params={"state": "failed"}, headers=bearer(ADMIN)), url
    )
    (dead,) = failed["webhooks"]
    assert dead["last_error"] == "HTTP 500"
    assert dead["attempts"] == 1
    delivered = (await api.get(url, params={"state": "delivered"}, headers=bearer(ADMIN))).json()
    assert len(delivered["webhooks"]) == 2

    replay = f"{url}/{dead['id']}/replay"
    again = conforms(
        spec, await api.post(replay, headers=bearer(ADMIN)), f"{url}/{{webhook_id}}/replay"
    )
    assert again["id"] == dead["id"]
    assert again["state"] == "pending"
    assert again["attempts"] == 0
    assert again["next_attempt_at"]
    assert (await notifying.deliver_webhooks()).delivered == 1
    ids = [r.headers["webhook-id"] for r in sink.wait_for(4)]
    assert ids.count(dead["id"]) == 2  # the same webhook-id again: the app de-duplicates


async def test_unknown_ids_bad_states_and_keys_that_may_not_manage(
    api: httpx.AsyncClient,
) -> None:
    url = "/v1/manage/webhooks"
    unknown = problem(
        await api.post(f"{url}/msg_nothing/replay", headers=bearer(ADMIN)), 404, "unknown_webhook"
    )
    assert unknown["unknown_ids"] == ["msg_nothing"]
    problem(
        await api.get(url, params={"state": "lost"}, headers=bearer(ADMIN)), 400, "invalid_request"
    )
    problem(await api.get(url, params={"limit": 0}, headers=bearer(ADMIN)), 400, "invalid_request")
    refused: dict[str, Any] = problem(
        await api.get(url, headers=bearer(WORKER)), 403, "service_key_limit"
    )
    assert refused["limit"] == "operation"
    problem(await api.post(f"{url}/msg_x/replay", headers=bearer(WORKER)), 403, "service_key_limit")
    problem(await api.get(url), 401, "unauthorized")
