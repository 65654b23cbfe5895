"""The keeper's reading API (what the management API, the CLI's ``users``/``audit`` and the demo
answer from): users with their grants, one user, the audit log, a page at a time, and never a
token in any of it."""

from __future__ import annotations

import json

import pytest

from grantkeeper.errors import InvalidRequest, UnknownUser
from grantkeeper.keeper import Keeper

from .conftest import DRIVE_APPDATA, OPENID, World

pytestmark = pytest.mark.anyio


async def _sign_in_three(keeper: Keeper, world: World) -> list[str]:
    """Ada (offline, Drive) plus two more users; their subs in ``sub`` order."""
    await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    for email in ("grace@example.com", "edsger@example.com"):
        world.emulator.control.create_user(email)
        await keeper.sign_in(world.code(email=email))
    return sorted(user.sub for user in await keeper.users())


def _no_token_in(value: object, keeper_tokens: list[str]) -> None:
    text = json.dumps(value, default=str)
    for token in keeper_tokens:
        assert token not in text


async def test_users_and_one_user_show_grants_but_never_a_token(
    keeper: Keeper, world: World
) -> None:
    await _sign_in_three(keeper, world)
    found = await keeper.users()
    assert len(found) == 3
    ada = await keeper.user(world.sub)
    assert ada.sub == world.sub
    [grant] = ada.grants
    assert grant.status == "active"
    body = ada.to_json()
    assert body["user"]["email"] == world.email
    assert body["grants"][0]["client_id"] == keeper.client_id
    assert DRIVE_APPDATA in body["grants"][0]["scopes"]
    token = await keeper.access_token(world.sub)
    _no_token_in(body, [token.token])
    with pytest.raises(UnknownUser):
        await keeper.user("no-such-sub")


async def test_users_come_a_page_at_a_time_and_a_status_filters_them(
    keeper: Keeper, world: World
) -> None:
    subs = await _sign_in_three(keeper, world)
    first = await keeper.users_page(limit=2)
    assert [item["sub"] for item in first.items] == subs[:2]
    assert first.next == subs[1]
    second = await keeper.users_page(after=first.next, limit=2)
    assert [item["sub"] for item in second.items] == subs[2:]
    assert second.next is None  # the last page
    assert second.to_json("users") == {"users": second.items, "next": None}

    await keeper.disconnect(world.sub)
    revoked = await keeper.users_page(status="disconnected")
    assert [item["sub"] for item in revoked.items] == [world.sub]
    active = await keeper.users_page(status="active")
    assert world.sub not in [item["sub"] for item in active.items]
    assert await keeper.grant_counts() == {"active": 2, "disconnected": 1}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"status": "sleeping"}, "status is one of active"), ({"limit": 0}, "limit is between")],
)
async def test_a_bad_page_request_is_a_clear_error(
    keeper: Keeper, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await keeper.users_page(**arguments)  # type: ignore[arg-type]


async def test_one_user_in_detail_with_the_newest_history_first(
    keeper: Keeper, world: World
) -> None:
    await keeper.sign_in(world.code([*OPENID, DRIVE_APPDATA]))
    world.emulator.control.advance_clock(2 * 3600)
    token = await keeper.access_token(world.sub)  # a refresh: a second audit event
    detail = await keeper.user_detail(world.sub)
    assert detail["user"]["sub"] == world.sub
    assert [g["status"] for g in detail["grants"]] == ["active"]
    assert [(e["kind"], e["outcome"]) for e in detail["history"]] == [
        ("refresh", "ok"),
        ("sign_in", "ok"),
    ]
    assert detail["history"][0]["at"].endswith("Z")
    _no_token_in(detail, [token.token])
    assert len((await keeper.user_detail(world.sub, history=1))["history"]) == 1
    with pytest.raises(UnknownUser):
        await keeper.user_detail("no-such-sub")
    with pytest.raises(InvalidRequest, match="limit is between"):
        await keeper.user_detail(world.sub, history=10_000)


async def test_the_audit_log_newest_first_by_user_and_kind_a_page_at_a_time(
    keeper: Keeper, world: World
) -> None:
    await _sign_in_three(keeper, world)
    await keeper.disconnect(world.sub)

    everything = await keeper.audit()
    assert everything[0].event.kind == "disconnect"
    ids = [e.event.id for e in everything]
    assert ids == sorted(ids, reverse=True)
    ada = await keeper.audit(world.sub)
    assert {e.event.sub for e in ada} == {world.sub}
    assert [e.to_json()["kind"] for e in ada] == ["disconnect", "sign_in"]
    sign_ins = await keeper.audit(kind="sign_in")
    assert len(sign_ins) == 3

    first = await keeper.audit_page(kind="sign_in", limit=2)
    assert len(first.items) == 2
    assert first.next == str(first.items[-1]["id"])
    rest = await keeper.audit_page(kind="sign_in", before=int(first.next), limit=2)
    assert [e["id"] for e in rest.items] == [sign_ins[2].event.id]
    assert rest.next is None
    only_ada = await keeper.audit_page(sub=world.sub)
    assert [e["kind"] for e in only_ada.items] == ["disconnect", "sign_in"]


async def test_reading_before_open_says_how_to_open(world: World) -> None:
    keeper = Keeper(world.settings)
    with pytest.raises(RuntimeError, match="Keeper is not open"):
        await keeper.users()
