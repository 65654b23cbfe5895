"""Durable webhooks: each notification is written to the store with the change that causes it,
and delivered from there at least once, with the same webhook-id, across restarts and
deliverers, on both stores."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from grantkeeper.crypto import KeyRing
from grantkeeper.errors import GrantRevoked, InvalidRequest, UnknownWebhook
from grantkeeper.keeper import Keeper
from grantkeeper.keeper.webhook_delivery import DeliveryPolicy, WebhookDeliverer
from grantkeeper.store import GrantStatus, OutboxMessage
from grantkeeper.webhooks import WebhookSender, build_message, generate_secret

from ..conftest import StoreTarget
from .conftest import World, quick_provider
from .webhook_sink import WebhookSink, webhook_sink

pytestmark = pytest.mark.anyio


async def no_wait(_: float) -> None:
    return None


def unreachable_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/gone"


@asynccontextmanager
async def notifying_keeper(
    world: World,
    store_target: StoreTarget,
    keyring: KeyRing,
    url: str,
    secret: str,
    **settings: Any,
) -> AsyncIterator[Keeper]:
    """A keeper on the store under test whose notifications go to ``url``; its own store
    connections, as another process would have."""
    clock = world.emulator.state.clock
    store = await store_target.open(keyring, clock)
    provider = quick_provider(world.settings, clock)
    keeper = Keeper(
        world.settings.model_copy(update=settings),
        clock=clock,
        store=store,
        provider=provider,
        sleep=no_wait,
        webhooks=WebhookSender(url, secret),
    )
    try:
        async with keeper:
            yield keeper
    finally:
        await provider.aclose()
        await store.close()


async def revoke_at_google(keeper: Keeper, world: World) -> str:
    """Sign in, then the user removes the app at Google: the next refresh finds it revoked."""
    sub = (await keeper.sign_in(world.code(prompt="consent"))).sub
    world.emulator.control.revoke_user(sub)
    world.emulator.control.advance_clock(7200)
    with pytest.raises(GrantRevoked):
        await keeper.access_token(sub)
    return sub


async def listed(keeper: Keeper, **query: Any) -> list[dict[str, Any]]:
    return (await keeper.webhooks_page(**query)).items


def verified(secret: str, sink: WebhookSink, count: int) -> list[tuple[str, dict[str, Any]]]:
    """(webhook-id, payload) of the first ``count`` requests, each signature checked with the
    Standard Webhooks reference verifier."""
    arrived = sink.wait_for(count)
    assert len(arrived) == count
    return [(r.headers["webhook-id"], Webhook(secret).verify(r.body, r.headers)) for r in arrived]


async def test_the_revocation_writes_its_notification_and_it_arrives_signed(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            sub = await revoke_at_google(k, world)
            (written,) = await listed(k)
            assert written["type"] == "grant.revoked"
            assert written["state"] == "pending"
            assert written["attempts"] == 0
            report = await k.deliver_webhooks()
            assert report.delivered == 1
            ((webhook_id, payload),) = verified(secret, sink, 1)
            (after,) = await listed(k)
    assert webhook_id == written["id"]
    assert webhook_id.startswith("msg_")
    assert payload["type"] == "grant.revoked"
    assert payload["data"]["sub"] == sub
    assert payload["data"]["reason"] == "revoked"
    assert after["state"] == "delivered"
    assert after["attempts"] == 1
    assert after["delivered_at"] is not None
    assert after["next_attempt_at"] is None


async def test_no_notification_unless_the_change_is_committed(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    async with notifying_keeper(
        world, store_target, store_keyring, unreachable_url(), generate_secret()
    ) as keeper:
        sub = (await keeper.sign_in(world.code(prompt="consent"))).sub
    store = await store_target.open(store_keyring, world.emulator.state.clock)
    try:
        now = world.emulator.state.clock.now()
        first = build_message("grant.revoked", {"sub": sub}, at=now)
        await store.enqueue_webhooks([OutboxMessage(first.id, first.type, first.body, now)])
        other = build_message("grant.revoked", {"sub": sub}, at=now)
        second = OutboxMessage(other.id, other.type, other.body, now)
        clash = OutboxMessage(first.id, first.type, first.body, now)
        # The grant change and its notifications are one transaction: a notification that
        # cannot be written (here an id already stored) takes the change down with it.
        with pytest.raises(sa.exc.IntegrityError):
            await store.erase_tokens(
                sub, status=GrantStatus.REVOKED, reason="test", outbox=[second, clash]
            )
        grant = await store.get_grant(sub, world.web_client_id)
        assert grant is not None
        assert grant.status == GrantStatus.ACTIVE
        assert grant.refresh_token is not None
        assert [e.id for e in await store.list_webhooks()] == [first.id]
        # A compare-and-swap that lost changes nothing and writes nothing.
        lost = await store.mark_revoked(
            sub, None, "test", expected_version=grant.version + 7, outbox=[second]
        )
        assert lost == 0
        assert [e.id for e in await store.list_webhooks()] == [first.id]
        # The same write that succeeds writes it.
        assert await store.mark_revoked(sub, None, "test", outbox=[second]) == 1
        assert {e.id for e in await store.list_webhooks()} == {first.id, second.id}
    finally:
        await store.close()


async def test_no_webhook_configured_writes_no_notification(keeper: Keeper, world: World) -> None:
    sub = await revoke_at_google(keeper, world)
    assert sub
    assert await listed(keeper) == []


async def test_a_receiver_failing_then_accepting_gets_the_same_webhook_id(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        sink.statuses = [500]
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            await revoke_at_google(k, world)
            assert (await k.deliver_webhooks()).retried == 1
            (waiting,) = await listed(k, state="pending")
            assert waiting["attempts"] == 1
            assert waiting["last_error"] == "HTTP 500"
            # Not due yet: backing off (a minute or so, with jitter), measured on the clock.
            assert (await k.deliver_webhooks()).attempted == 0
            world.emulator.control.advance_clock(120)
            assert (await k.deliver_webhooks()).delivered == 1
            (done,) = await listed(k)
            first, second = verified(secret, sink, 2)
    assert first[0] == second[0] == done["id"]
    assert first[1] == second[1]
    assert done["state"] == "delivered"
    assert done["attempts"] == 2


async def test_after_every_attempt_failed_replay_sends_it_again(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        sink.statuses = [503, 503]
        async with notifying_keeper(
            world, store_target, store_keyring, sink.url, secret, webhook_max_attempts=2
        ) as k:
            await revoke_at_google(k, world)
            assert (await k.deliver_webhooks()).retried == 1
            world.emulator.control.advance_clock(3600)
            assert (await k.deliver_webhooks()).failed == 1
            (failed,) = await listed(k, state="failed")
            assert failed["attempts"] == 2
            assert failed["last_error"] == "HTTP 503"
            world.emulator.control.advance_clock(86400)
            assert (await k.deliver_webhooks()).attempted == 0  # given up: no more attempts
            with pytest.raises(UnknownWebhook) as unknown:
                await k.replay_webhooks([failed["id"], "msg_nope"])
            assert unknown.value.unknown == ["msg_nope"]
            assert (await listed(k, state="failed"))[0]["id"] == failed["id"]  # nothing reset
            with pytest.raises(InvalidRequest):
                await k.replay_webhooks()  # neither ids nor failed: nothing to do
            (again,) = await k.replay_webhooks(failed=True)
            assert again["id"] == failed["id"]
            assert again["state"] == "pending"
            assert again["attempts"] == 0
            assert (await k.deliver_webhooks()).delivered == 1
            ids = {webhook_id for webhook_id, _ in verified(secret, sink, 3)}
    assert ids == {failed["id"]}


async def test_a_notification_survives_the_keeper_that_wrote_it(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    # The first keeper writes the notification and closes while the app is unreachable.
    async with notifying_keeper(
        world, store_target, store_keyring, unreachable_url(), secret
    ) as first:
        sub = await revoke_at_google(first, world)
        (written,) = await listed(first)
    with webhook_sink() as sink:
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            (kept,) = await listed(k)
            assert kept["id"] == written["id"]
            assert kept["state"] == "pending"
            assert kept["last_error"]
            world.emulator.control.advance_clock(600)
            assert (await k.deliver_webhooks()).delivered == 1
            ((webhook_id, payload),) = verified(secret, sink, 1)
    assert webhook_id == written["id"]
    assert payload["data"]["sub"] == sub


async def test_a_claim_whose_deliverer_died_is_taken_again_when_its_lease_lapses(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    clock = world.emulator.state.clock
    with webhook_sink() as sink:
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            store = await store_target.open(store_keyring, clock)
            try:
                await revoke_at_google(k, world)
                # A deliverer claims it and dies before it can say how the POST went.
                (claimed,) = await store.claim_webhooks("dead", timedelta(seconds=60), 10)
            finally:
                await store.close()
            assert (await k.deliver_webhooks()).attempted == 0  # held by the dead one's lease
            world.emulator.control.advance_clock(61)
            assert (await k.deliver_webhooks()).delivered == 1
            ((webhook_id, _),) = verified(secret, sink, 1)
            (done,) = await listed(k)
    assert webhook_id == claimed.id
    assert done["attempts"] == 2  # the dead attempt counts: a poison message still ends


async def test_a_message_whose_every_deliverer_dies_ends_failed_after_its_attempts(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    clock = world.emulator.state.clock
    with webhook_sink() as sink:
        async with notifying_keeper(
            world, store_target, store_keyring, sink.url, generate_secret(), webhook_max_attempts=2
        ) as k:
            await revoke_at_google(k, world)
            store = await store_target.open(store_keyring, clock)
            try:
                # Two deliverers in turn claim it and die before recording the POST's outcome.
                for n in range(2):
                    claims = await store.claim_webhooks(f"dead-{n}", timedelta(seconds=60), 10)
                    assert len(claims) == 1
                    world.emulator.control.advance_clock(61)
            finally:
                await store.close()
            # Its attempts are used up: not claimed a third time, failed with a reason.
            assert (await k.deliver_webhooks()).attempted == 0
            (entry,) = await listed(k)
            assert entry["state"] == "failed"
            assert entry["attempts"] == 2
            assert "deliverer lost" in entry["last_error"]
            assert sink.received == []
            # A replay sends it again.
            await k.replay_webhooks([entry["id"]])
            assert (await k.deliver_webhooks()).delivered == 1


async def test_an_error_that_is_not_an_http_error_is_recorded_as_a_failed_attempt(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    # httpx raises InvalidURL (not an HTTPError) for a port that is not a number: the attempt
    # must still end with an outcome, not leave the claim leased and deliver_due raising.
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    try:
        now = clock.now()
        message = build_message("grant.revoked", {"sub": "1"}, at=now)
        await store.enqueue_webhooks([OutboxMessage(message.id, message.type, message.body, now)])
        sender = WebhookSender("https://app.example:abc/hook", generate_secret())
        report = await WebhookDeliverer(store, sender, clock=clock).deliver_due()
        (entry,) = await store.list_webhooks()
    finally:
        await store.close()
    assert report.retried == 1
    assert entry.state == "pending"
    assert entry.last_error == "InvalidURL (unexpected)"


@pytest.mark.parametrize("name", ["webhook_retry_seconds", "webhook_retry_max_seconds"])
def test_a_retry_wait_of_zero_is_refused(name: str) -> None:
    # 0 would retry a failing receiver in a tight loop until the attempts are gone.
    from grantkeeper.settings import Settings

    with pytest.raises(ValueError, match=f"GRANTKEEPER_{name.upper()}: .* equal to 1"):
        Settings(**{name: 0})


def test_a_webhook_url_with_an_invalid_port_is_refused() -> None:
    from grantkeeper.settings import Settings

    with pytest.raises(ValueError, match="invalid port"):
        Settings(webhook_url="https://app.example:abc/hook", webhook_secret=generate_secret())


async def test_two_deliverers_on_one_store_deliver_each_message_once(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    clock = world.emulator.state.clock
    stores = [await store_target.open(store_keyring, clock) for _ in range(2)]
    try:
        now = clock.now()
        made = [build_message("grant.expiring", {"n": n}, at=now) for n in range(60)]
        await stores[0].enqueue_webhooks(
            [OutboxMessage(m.id, m.type, m.body, m.created_at) for m in made]
        )
        with webhook_sink() as sink:
            policy = DeliveryPolicy(batch=7)
            deliverers = [
                WebhookDeliverer(store, WebhookSender(sink.url, secret), clock=clock, policy=policy)
                for store in stores
            ]
            reports = await asyncio.gather(*(d.deliver_due() for d in deliverers))
            arrived = verified(secret, sink, 60)
        assert sorted(webhook_id for webhook_id, _ in arrived) == sorted(m.id for m in made)
        assert sum(r.delivered for r in reports) == 60
        assert all(r.delivered > 0 for r in reports), "both deliverers took a share"
        entries = await stores[1].list_webhooks(limit=100)
        assert {e.state for e in entries} == {"delivered"}
        assert {e.attempts for e in entries} == {1}
    finally:
        for store in stores:
            await store.close()


async def test_a_recovery_on_sign_in_is_notified(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            sub = await revoke_at_google(k, world)
            await k.sign_in(world.code(prompt="consent"))  # the user comes back
            kinds = [w["type"] for w in await listed(k)]
            assert kinds == ["grant.recovered", "grant.revoked"]
            await k.deliver_webhooks()
            arrived = verified(secret, sink, 2)
    # One attempt each, side by side: the app must not rely on their order (timestamp says).
    assert sorted(payload["type"] for _, payload in arrived) == ["grant.recovered", "grant.revoked"]
    assert {payload["data"]["sub"] for _, payload in arrived} == {sub}


def test_background_delivery_of_a_sync_keeper(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    """A SyncKeeper delivers on its loop thread while it runs, not only when closed."""
    from grantkeeper.crypto import generate_key
    from grantkeeper.keeper import SyncKeeper

    secret = generate_secret()
    with webhook_sink() as sink:
        settings = world.settings.model_copy(
            update={
                "database_url": store_target.url,
                "database_schema": store_target.schema,
                "encryption_keys": [generate_key()],
                "webhook_url": sink.url,
                "webhook_secret": secret,
            }
        )
        with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:
            sub = keeper.sign_in(world.code(prompt="consent")).sub
            keeper.disconnect(sub)
            ((_, payload),) = verified(secret, sink, 1)  # before close
    assert payload["type"] == "grant.revoked"
    assert payload["data"]["source"] == "disconnect"


async def test_background_delivery_starts_on_a_write_and_stops_with_the_keeper(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    """What ``serve`` runs in each worker: woken by the keeper's own writes, no poll to wait."""
    secret = generate_secret()
    with webhook_sink() as sink:
        async with notifying_keeper(world, store_target, store_keyring, sink.url, secret) as k:
            assert await k.start_webhook_delivery()
            sub = await revoke_at_google(k, world)
            for _ in range(200):
                if (await listed(k, state="delivered")) or sink.received:
                    break
                await asyncio.sleep(0.02)
            ((_, payload),) = verified(secret, sink, 1)
            await k.stop_webhook_delivery()
    assert payload["data"]["sub"] == sub


async def test_delivered_notifications_are_pruned_after_their_retention(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    secret = generate_secret()
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    try:
        now = clock.now()
        made = [build_message("grant.expiring", {"n": n}, at=now) for n in range(2)]
        await store.enqueue_webhooks(
            [OutboxMessage(m.id, m.type, m.body, m.created_at) for m in made]
        )
        with webhook_sink() as sink:
            sink.statuses = [410]
            policy = DeliveryPolicy(max_attempts=1, batch=1, retention=timedelta(days=7))
            deliverer = WebhookDeliverer(
                store, WebhookSender(sink.url, secret), clock=clock, policy=policy
            )
            report = await deliverer.deliver_due()
        assert (report.delivered, report.failed) == (1, 1)
        assert await deliverer.prune() == 0  # delivered just now
        world.emulator.control.advance_clock(8 * 86400)
        assert await deliverer.prune() == 1
        (kept,) = await store.list_webhooks()
        assert kept.state == "failed"  # kept for the operator to replay
    finally:
        await store.close()


async def test_one_delivery_round_also_prunes_past_retention(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    # The worker's webhooks job and `webhooks deliver --once` only run rounds, never run():
    # without a prune there, delivered messages pile up for ever.
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    try:
        now = clock.now()
        old = build_message("grant.revoked", {"n": 1}, at=now)
        await store.enqueue_webhooks([OutboxMessage(old.id, old.type, old.body, now)])
        policy = DeliveryPolicy(retention=timedelta(days=7))
        with webhook_sink() as sink:
            sender = WebhookSender(sink.url, generate_secret())
            first = WebhookDeliverer(store, sender, clock=clock, policy=policy)
            assert (await first.deliver_due()).delivered == 1
            world.emulator.control.advance_clock(8 * 86400)
            # A later round, by a deliverer made for it (as the CLI and the worker do).
            later = WebhookDeliverer(store, sender, clock=clock, policy=policy)
            await later.deliver_due()
        assert await store.list_webhooks() == []
    finally:
        await store.close()


async def test_an_attempt_ends_before_its_claim_lapses(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    # httpx times each phase, not the whole POST: a receiver answering slowly enough could
    # hold an attempt past its lease while another deliverer sends the message again.
    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    try:
        now = clock.now()
        message = build_message("grant.revoked", {"n": 1}, at=now)
        await store.enqueue_webhooks([OutboxMessage(message.id, message.type, message.body, now)])

        class Trickling(WebhookSender):
            async def post(self, client: Any, message_id: str, body: str) -> str | None:
                await asyncio.sleep(3600)
                return None

        policy = DeliveryPolicy(lease=timedelta(seconds=5.2))
        deliverer = WebhookDeliverer(
            store, Trickling(unreachable_url(), generate_secret()), clock=clock, policy=policy
        )
        report = await asyncio.wait_for(deliverer.deliver_due(), 5)
        (entry,) = await store.list_webhooks()
    finally:
        await store.close()
    assert report.retried == 1
    assert entry.last_error == "no answer within 1 s"


async def test_closing_spends_at_most_the_drain_it_is_given(
    world: World, store_target: StoreTarget, store_keyring: KeyRing
) -> None:
    # grantkeeper worker closes its keeper with --grace: a receiver that never answers must
    # not hold a stop for the 30 s default.
    class Hanging(WebhookSender):
        async def post(self, client: Any, message_id: str, body: str) -> str | None:
            await asyncio.sleep(3600)
            return None

    clock = world.emulator.state.clock
    store = await store_target.open(store_keyring, clock)
    provider = quick_provider(world.settings, clock)
    keeper = Keeper(
        world.settings,
        clock=clock,
        store=store,
        provider=provider,
        sleep=no_wait,
        webhooks=Hanging(unreachable_url(), generate_secret()),
    )
    try:
        await keeper.open()
        await revoke_at_google(keeper, world)
        await keeper.start_webhook_delivery()
        started = time.monotonic()
        await keeper.close(webhook_drain=0.5)
        assert time.monotonic() - started < 5
        (entry,) = await store.list_webhooks()
        assert entry.state == "pending"  # left for the next deliverer, not lost
    finally:
        await provider.aclose()
        await store.close()
