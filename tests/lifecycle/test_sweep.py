"""The sweep against a keeper, the emulator and a real store: states, keep-alive, pending
revocations completed once the provider is back, several hosts at once, expiry webhooks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import anyio
import pytest
from standardwebhooks import Webhook

from grantkeeper import metrics
from grantkeeper.keeper import GrantEvent, GrantHealth, Keeper, SweepOptions
from grantkeeper.keeper.sweep import classify
from grantkeeper.store import GrantStatus, UserProfile
from grantkeeper.webhooks import WebhookSender, generate_secret

from ..app_world import provider_of, store_of
from .conftest import DRIVE_APPDATA, OPENID, World, quick_provider
from .webhook_sink import webhook_sink

pytestmark = pytest.mark.anyio

DAY = 24 * 3600


async def _seed_other(keeper: Keeper, sub: str, **changes: Any) -> None:
    now = keeper.clock.now()
    await store_of(keeper).record_sign_in(
        UserProfile(sub=sub),
        keeper.client_id,
        set(OPENID),
        f"1//0g-other-{sub}",
        f"ya29.other-{sub}",
        now + timedelta(hours=1),
        changes.get("refresh_token_expires_at"),
    )


async def test_states_are_reported_and_idle_grants_kept_alive(keeper: Keeper, world: World) -> None:
    ada = (await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))).sub
    now = keeper.clock.now()
    await _seed_other(keeper, "200", refresh_token_expires_at=now + timedelta(days=1))
    await _seed_other(keeper, "300")
    await store_of(keeper).mark_revoked("300", keeper.client_id, "invalid_grant")
    await _seed_other(keeper, "400", refresh_token_expires_at=now + timedelta(days=200))

    metrics.set_grant_counts({})  # the gauges below are the sweep's, not an earlier test's
    report = await keeper.sweep()
    states = {g.sub: g.state for g in report.grants}
    assert states == {
        ada: GrantHealth.HEALTHY,
        "200": GrantHealth.EXPIRING,
        "300": GrantHealth.REVOKED,
        "400": GrantHealth.HEALTHY,
    }
    assert {g.sub: g.reason for g in report.grants}["300"] == "invalid_grant"
    assert report.counts["healthy"] == 2
    assert metrics.REGISTRY.get_sample_value("grantkeeper_grants", {"state": "revoked"}) == 1

    # 100 days later Ada's grant is idle (Google drops it at six months): keep it alive.
    world.emulator.control.advance_clock(100 * DAY)
    report = await keeper.sweep()
    assert {g.sub: g.state for g in report.grants}[ada] == GrantHealth.IDLE
    assert {g.sub: g.state for g in report.grants}["200"] == GrantHealth.EXPIRED
    refreshes = world.stats()["token"]["refresh_token"]
    kept = await keeper.sweep(SweepOptions(keep_alive=True))
    by_sub = {g.sub: g for g in kept.grants}
    assert by_sub[ada].action == "kept_alive"
    assert by_sub[ada].state == GrantHealth.HEALTHY
    # The seeded grants' tokens are unknown to the emulator: their keep-alive fails, visibly.
    assert by_sub["400"].action == "keep_alive_failed"
    assert world.stats()["token"]["refresh_token"] > refreshes
    grant = await store_of(keeper).get_grant(ada)
    assert grant is not None
    assert classify(grant, keeper.clock.now(), SweepOptions()) == GrantHealth.HEALTHY


async def test_a_pending_revocation_is_completed_by_the_sweep(keeper: Keeper, world: World) -> None:
    sub = (await keeper.sign_in(world.code())).sub
    world.emulator.control.add_fault("revoke", status=503, count=None)
    outcome = await keeper.disconnect(sub)
    assert outcome.pending
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.PENDING_REVOCATION

    still = await keeper.sweep()
    assert [(g.state, g.action) for g in still.grants] == [
        (GrantHealth.PENDING, "revocation_still_pending")
    ]
    assert world.stats()["live_refresh_tokens_per_user"].get(sub) == 1

    world.emulator.control.clear_faults()
    done = await keeper.sweep()
    assert [(g.state, g.action) for g in done.grants] == [
        (GrantHealth.DISCONNECTED, "revocation_completed")
    ]
    assert world.stats()["live_refresh_tokens_per_user"].get(sub, 0) == 0
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.DISCONNECTED
    assert grant.refresh_token is None
    assert grant.access_token is None
    outcomes = [e.outcome for e in await store_of(keeper).list_audit(sub, kind="disconnect")]
    assert outcomes == ["revoked", "revocation_pending", "revocation_pending"]


def sign_in_while_google_answers(keeper: Keeper, world: World, sub_email: str) -> list[str]:
    """Make the provider's revoke call end with the user signing in again (on another
    instance) after Google revoked the old token but before its answer arrives here. Returns
    the sub of each sign-in that landed so."""
    provider = provider_of(keeper)
    real_revoke = provider.revoke
    landed: list[str] = []

    async def revoke(token: str, **options: Any) -> None:
        await real_revoke(token, **options)
        landed.append((await keeper.sign_in(world.code(email=sub_email, prompt="consent"))).sub)

    provider.revoke = revoke  # type: ignore[method-assign]
    return landed


async def test_a_sweep_completing_a_revocation_keeps_a_sign_in_that_landed_meanwhile(
    keeper: Keeper, world: World
) -> None:
    # The lease keeps other sweeps out, not a sign-in: erasing what was read before the revoke
    # call would wipe the new refresh token (never revoked at Google) and send grant.revoked.
    email = "returning@example.com"
    world.emulator.control.create_user(email)
    sub = (await keeper.sign_in(world.code(email=email))).sub
    world.emulator.control.add_fault("revoke", status=503, count=None)
    assert (await keeper.disconnect(sub)).pending
    world.emulator.control.clear_faults()

    landed = sign_in_while_google_answers(keeper, world, email)
    report = await keeper.sweep()

    assert landed == [sub]
    assert [g.action for g in report.grants] == ["revocation_superseded"]
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.ACTIVE
    assert grant.refresh_token is not None
    world.emulator.control.advance_clock(7200)
    assert (await keeper.access_token(sub)).token  # offline access survived
    outcomes = [e.outcome for e in await store_of(keeper).list_audit(sub, kind="disconnect")]
    assert "revoked" not in outcomes
    assert outcomes[0] == "superseded"


async def test_a_disconnect_keeps_a_sign_in_that_landed_during_its_revoke_call(
    keeper: Keeper, world: World
) -> None:
    email = "quick@example.com"
    world.emulator.control.create_user(email)
    sub = (await keeper.sign_in(world.code(email=email))).sub
    landed = sign_in_while_google_answers(keeper, world, email)

    outcome = await keeper.disconnect(sub, forget=True)

    assert landed == [sub]
    assert not outcome.forgotten
    grant = await store_of(keeper).get_grant(sub)
    assert grant is not None
    assert grant.status == GrantStatus.ACTIVE
    assert grant.refresh_token is not None


async def test_sweeps_on_several_hosts_revoke_once(
    keeper: Keeper, world: World, store_target: Any, store_keyring: Any
) -> None:
    subs = []
    for n in range(3):
        email = f"user{n}@example.com"
        world.emulator.control.create_user(email)
        subs.append((await keeper.sign_in(world.code(email=email))).sub)
    world.emulator.control.add_fault("revoke", status=503, count=None)
    for sub in subs:
        assert (await keeper.disconnect(sub)).pending
    world.emulator.control.clear_faults()
    revokes_before = world.stats().get("revoke", 0)

    clock = world.emulator.state.clock
    hosts = []
    for _ in range(3):
        store = await store_target.open(store_keyring, clock)
        provider = quick_provider(world.settings, clock)
        hosts.append((store, Keeper(world.settings, clock=clock, store=store, provider=provider)))
    try:
        results: list[Any] = []

        async def run(store: Any, other: Keeper) -> None:
            async with other:
                results.append(await other.sweep())

        async with anyio.create_task_group() as group:
            for store, other in hosts:
                group.start_soon(run, store, other)
    finally:
        for store, other in hosts:
            await provider_of(other).aclose()
            await store.close()

    completed = [g.sub for r in results for g in r.grants if g.action == "revocation_completed"]
    assert sorted(completed) == sorted(subs)
    assert world.stats()["revoke"] - revokes_before == len(subs)
    for sub in subs:
        grant = await store_of(keeper).get_grant(sub)
        assert grant is not None
        assert grant.status == GrantStatus.DISCONNECTED


async def test_expiring_grants_are_announced_by_webhook(keeper: Keeper) -> None:
    await _seed_other(
        keeper, "500", refresh_token_expires_at=keeper.clock.now() + timedelta(hours=5)
    )
    secret = generate_secret()
    with webhook_sink() as sink:
        sender = WebhookSender(sink.url, secret)
        notifying = Keeper(
            keeper.settings, clock=keeper.clock, store=store_of(keeper), webhooks=sender
        )
        async with notifying:
            report = await notifying.sweep()
        await sender.drain()
        (received,) = sink.wait_for(1)
    assert report.grants[0].action == "notified"
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "grant.expiring"
    assert payload["data"]["sub"] == "500"
    assert payload["data"]["client_id"] == keeper.client_id
    assert "refresh" not in received.body.decode()


async def test_an_expiring_grant_is_announced_once_however_often_it_is_swept(
    keeper: Keeper, world: World
) -> None:
    # The worker sweeps hourly, inside a window of days: one notice per grant and expiry,
    # whichever host's sweep writes it, not one per sweep (each with a new webhook-id).
    await _seed_other(
        keeper, "500", refresh_token_expires_at=keeper.clock.now() + timedelta(days=2)
    )
    with webhook_sink() as sink:
        sender = WebhookSender(sink.url, generate_secret())
        notifying = Keeper(
            keeper.settings, clock=keeper.clock, store=store_of(keeper), webhooks=sender
        )
        async with notifying:
            for _ in range(3):
                report = await notifying.sweep()
                assert report.grants[0].action == "notified"
                world.emulator.control.advance_clock(3600)
        await sender.drain()
    expiring = [e for e in await store_of(keeper).list_webhooks() if e.type == "grant.expiring"]
    assert len(expiring) == 1
    assert expiring[0].id.startswith("msg_expiring_")
    assert json.loads(expiring[0].body)["data"]["expires_at"].endswith("Z")


async def test_a_grant_sealed_with_a_lost_key_is_reported_and_the_rest_still_swept(
    keeper: Keeper, world: World, store_target: Any
) -> None:
    from grantkeeper.crypto import KeyRing, generate_key

    await _seed_other(keeper, "500")
    await _seed_other(keeper, "600")
    # Re-seal one grant with a key that the keeper's ring does not hold.
    lost = KeyRing.from_strings([generate_key("lostkey")])
    other = await store_target.open(lost, keeper.clock)
    try:
        await _seed_other_with(other, keeper.client_id, "700", keeper.clock.now())
    finally:
        await other.close()
    progress: list[int] = []
    report = await keeper.sweep(on_progress=progress.append)
    assert sum(progress) == 3
    states = {g.sub: g.state for g in report.grants}
    assert states == {
        "500": GrantHealth.HEALTHY,
        "600": GrantHealth.HEALTHY,
        "700": GrantHealth.UNDECRYPTABLE,
    }
    assert report.counts["undecryptable"] == 1


async def _seed_other_with(store: Any, client_id: str, sub: str, now: Any) -> None:
    await store.record_sign_in(
        UserProfile(sub=sub),
        client_id,
        set(OPENID),
        f"1//0g-other-{sub}",
        f"ya29.other-{sub}",
        now + timedelta(hours=1),
    )


async def test_a_revocation_the_sweep_completes_is_announced_like_a_disconnect(
    keeper: Keeper, world: World
) -> None:
    """One revocation path: the sweep finishing a pending revocation emits ``disconnected``
    and so the app gets its ``grant.revoked`` webhook, as if the provider had answered at once."""
    sub = (await keeper.sign_in(world.code())).sub
    secret = generate_secret()
    with webhook_sink() as sink:
        sender = WebhookSender(sink.url, secret)
        heard: list[GrantEvent] = []
        notifying = Keeper(
            keeper.settings,
            clock=keeper.clock,
            store=store_of(keeper),
            provider=provider_of(keeper),
            webhooks=sender,
        )
        notifying.add_listener(heard.append)
        async with notifying:
            world.emulator.control.add_fault("revoke", status=503, count=None)
            try:
                assert (await notifying.disconnect(sub)).pending
            finally:
                world.emulator.control.clear_faults()
            assert [e.kind for e in heard] == []
            report = await notifying.sweep()
        await sender.drain()
        (received,) = sink.wait_for(1)
    assert report.actions == {"revocation_completed": 1}
    *changes, census = heard
    assert [(e.kind, e.sub, e.detail) for e in changes] == [
        ("disconnected", sub, {"forget": False, "by": "sweep"})
    ]
    assert (census.kind, census.detail["statuses"]) == ("swept", {"disconnected": 1})
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "grant.revoked"
    assert payload["data"]["sub"] == sub
    assert payload["data"]["source"] == "disconnect"


async def test_keep_alive_works_on_several_grants_at_once(keeper: Keeper, world: World) -> None:
    import asyncio

    from grantkeeper.keeper.sweep import sweep

    for n in range(6):
        await _seed_other(keeper, f"90{n}")
    world.emulator.control.advance_clock(100 * DAY)  # every grant idle
    in_flight = most = 0
    together = asyncio.Event()

    class Offline:
        """Each refresh waits until three are under way: one at a time never gets there."""

        async def access_token(self, sub: str, *args: Any, **kwargs: Any) -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 3:
                together.set()
            await asyncio.wait_for(together.wait(), 5)
            in_flight -= 1

    report = await sweep(
        keeper._open_parts(),
        options=SweepOptions(keep_alive=True, concurrency=3),
        offline=Offline(),  # type: ignore[arg-type]
    )
    assert most == 3
    assert report.actions == {"kept_alive": 6}
    assert [g.sub for g in report.grants] == [f"90{n}" for n in range(6)]  # store order


async def test_the_report_lists_a_bounded_number_of_grants_and_counts_them_all(
    keeper: Keeper,
) -> None:
    for n in range(5):
        await _seed_other(keeper, f"80{n}")
    await _seed_other(keeper, "810")
    await _seed_other(keeper, "811")
    await store_of(keeper).mark_revoked("810", keeper.client_id, "invalid_grant")
    await store_of(keeper).mark_revoked("811", keeper.client_id, "invalid_grant")
    report = await keeper.sweep(SweepOptions(report_rows=2))
    assert report.total == 7
    assert report.counts["healthy"] == 5
    assert report.counts["revoked"] == 2
    # Two healthy grants and the two others by name: memory does not grow with the store.
    assert [g.sub for g in report.grants] == ["800", "801", "810", "811"]
    assert report.omitted == 3
    as_json = report.to_json()
    assert as_json["total"] == 7
    assert as_json["omitted"] == 3


async def test_pages_are_swept_back_to_back_and_reported_in_order(
    keeper: Keeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("grantkeeper.keeper.sweep.PAGE_SIZE", 2)
    subs = [str(n) for n in range(801, 806)]
    for sub in subs:
        await _seed_other(keeper, sub)
    progress: list[int] = []
    report = await keeper.sweep(on_progress=progress.append)
    assert progress == [2, 2, 1]  # a page is announced once it is done, in order
    assert [g.sub for g in report.grants] == subs
    assert report.counts["healthy"] == 5


async def test_a_grant_that_fails_stops_the_rest_of_the_sweep(
    keeper: Keeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing may go on refreshing or revoking after sweep() has raised: the failing page's
    # other grants and the next page's are cancelled and waited for.
    monkeypatch.setattr("grantkeeper.keeper.sweep.PAGE_SIZE", 3)
    for sub in ("901", "902", "903", "904", "905", "906"):
        await _seed_other(keeper, sub)
    started: list[str] = []
    finished: list[str] = []

    async def sweep_one(self: Any, grant: Any, now: Any) -> Any:
        started.append(grant.sub)
        if grant.sub == "901":
            await anyio.sleep(0.05)
            raise RuntimeError("a grant's chores failed")
        await anyio.sleep(0.3)
        finished.append(grant.sub)
        raise AssertionError("cancelled before it finished")

    monkeypatch.setattr("grantkeeper.keeper.sweep._Chores.sweep_one", sweep_one)
    with pytest.raises(RuntimeError, match="chores failed"):
        await keeper.sweep()
    await anyio.sleep(0.4)
    assert "904" in started  # the next page had started
    assert finished == []
