"""Named service keys with limits: operations and scopes refused with 403 naming the limit,
every hand-out and refresh audited under the key's name, keys listed without secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from grantkeeper.errors import ConfigurationError
from grantkeeper.keeper import Keeper
from grantkeeper.service_keys import ServiceKeyRing, parse_keys, split_setting
from grantkeeper.settings import Settings
from grantkeeper.web import create_app

from ..app_world import DRIVE_APPDATA, OPENID, World, store_of
from .test_signin_api import XRW, problem

pytestmark = pytest.mark.anyio

PHOTOS = "https://www.googleapis.com/auth/photoslibrary.appendonly"
DRIVE_WORKER = "drive-worker-key-0123456789"
READER = "reader-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"
LEGACY = "legacy-plain-key-0123456789"
KEYS = [
    f"drive-worker:sha256:{hashlib.sha256(DRIVE_WORKER.encode()).hexdigest()}"
    f";scopes={DRIVE_APPDATA};ops=token+refresh",
    f"reader:{READER};ops=token",
    f"admin:{ADMIN};ops=manage",
    LEGACY,
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def limited(keeper: Keeper, world: World) -> AsyncIterator[httpx.AsyncClient]:
    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": KEYS})
    transport = httpx.ASGITransport(app=create_app(keeper))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as api:
        yield api


async def sign_in(api: httpx.AsyncClient, world: World, scopes: list[str]) -> str:
    response = await api.post("/v1/google/signin", json={"code": world.code(scopes)}, headers=XRW)
    assert response.status_code == 200, response.text
    sub: str = response.json()["user"]["sub"]
    return sub


async def test_a_scope_limited_key_is_refused_beyond_its_scopes(
    limited: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    sub = await sign_in(limited, world, [*OPENID, DRIVE_APPDATA, PHOTOS])
    url = f"/v1/users/{sub}/token"
    ok = await limited.get(url, params={"scope": DRIVE_APPDATA}, headers=bearer(DRIVE_WORKER))
    assert ok.status_code == 200, ok.text
    beyond = problem(
        await limited.get(url, params={"scope": PHOTOS}, headers=bearer(DRIVE_WORKER)),
        403,
        "service_key_limit",
    )
    assert beyond["key"] == "drive-worker"
    assert beyond["limit"] == "scopes"
    assert beyond["allowed"] == [DRIVE_APPDATA]
    assert PHOTOS in beyond["detail"]
    unnamed = problem(
        await limited.get(url, headers=bearer(DRIVE_WORKER)), 403, "service_key_limit"
    )
    assert unnamed["limit"] == "scopes"
    assert DRIVE_WORKER not in json.dumps([beyond, unnamed])
    # Keys without a scope limit may ask for any scope the grant holds, or none.
    assert (await limited.get(url, params={"scope": PHOTOS}, headers=bearer(READER))).is_success
    assert (await limited.get(url, headers=bearer(LEGACY))).is_success


async def test_operations_beyond_a_key_are_refused(
    limited: httpx.AsyncClient, world: World
) -> None:
    sub = await sign_in(limited, world, [*OPENID, DRIVE_APPDATA])
    refused = [
        (limited.post(f"/v1/users/{sub}/token/refresh", headers=bearer(READER)), "reader"),
        (limited.delete(f"/v1/users/{sub}/grant", headers=bearer(DRIVE_WORKER)), "drive-worker"),
        (limited.get(f"/v1/users/{sub}/token", headers=bearer(ADMIN)), "admin"),
    ]
    for call, name in refused:
        body = problem(await call, 403, "service_key_limit")
        assert body["key"] == name
        assert body["limit"] == "operation"
    assert world.refreshes() == 0
    # The unnamed key keeps every operation it had (but not management).
    assert (await limited.post(f"/v1/users/{sub}/token/refresh", headers=bearer(LEGACY))).is_success
    assert (await limited.delete(f"/v1/users/{sub}/grant", headers=bearer(LEGACY))).is_success


async def test_hand_outs_and_refreshes_are_audited_with_the_key_name(
    limited: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    sub = await sign_in(limited, world, [*OPENID, DRIVE_APPDATA])
    token = await limited.get(
        f"/v1/users/{sub}/token", params={"scope": DRIVE_APPDATA}, headers=bearer(DRIVE_WORKER)
    )
    refused = token.json()["access_token"]
    await limited.post(
        f"/v1/users/{sub}/token/refresh",
        json={"rejected_token": refused},
        headers=bearer(DRIVE_WORKER),
    )
    await limited.delete(f"/v1/users/{sub}/grant", headers=bearer(LEGACY))
    events = await store_of(keeper).list_audit(sub)
    hand_outs = [(e.outcome, e.detail) for e in events if e.kind == "token"]
    assert hand_outs == [
        ("refreshed", {"caller": "drive-worker", "scopes": [], "forced": True}),
        ("ok", {"caller": "drive-worker", "scopes": [DRIVE_APPDATA], "forced": False}),
    ]
    refreshes = [e.detail for e in events if e.kind == "refresh" and e.outcome == "ok"]
    assert refreshes == [{"caller": "drive-worker"}]
    disconnects = [e.detail for e in events if e.kind == "disconnect"]
    legacy_name = ServiceKeyRing([LEGACY]).keys[0].name
    assert disconnects == [{"caller": legacy_name}]
    assert refused not in json.dumps([e.detail for e in events])


def test_the_setting_forms() -> None:
    digest = hashlib.sha256(b"json-key-0123456789abc").hexdigest()
    entries = split_setting(
        json.dumps(
            [
                {"name": "a", "sha256": digest, "ops": ["manage"]},
                {"name": "b", "key": "b-key-0123456789abcdef", "scopes": [DRIVE_APPDATA]},
            ]
        )
    )
    a, b = parse_keys(entries)
    assert (a.name, sorted(a.operations), a.scopes) == ("a", ["manage"], None)
    assert b.scopes == frozenset({DRIVE_APPDATA})
    assert sorted(b.operations) == ["disconnect", "refresh", "token"]
    ring = ServiceKeyRing(entries)
    assert ring.identify("json-key-0123456789abc") == a
    assert ring.identify("nope-0123456789abcdef") is None
    assert "key" not in repr(a).replace("ServiceKey", "")
    for bad, says in [
        (["x:short"], "shorter than 16"),
        (["x:0123456789abcdef;ops=token+fly"], "ops must be among"),
        (["x:0123456789abcdef;limit=1"], "options are scopes="),
        (["x:0123456789abcdef", "x:fedcba9876543210"], "name 'x' is taken"),
        (["x:0123456789abcdef", "y:0123456789abcdef"], "listed twice"),
        (["bad name!:0123456789abcdef"], "a name is"),
        (['{"name": "x"}'], "needs 'key' or 'sha256'"),
    ]:
        with pytest.raises(ConfigurationError, match=says) as caught:
            parse_keys(bad)
        assert "0123456789abcdef" not in str(caught.value)


def test_settings_refuse_a_bad_entry_without_echoing_it() -> None:
    with pytest.raises(Exception, match="entry 2") as caught:
        Settings(service_api_keys="good-key-0123456789,w:tiny", _env_file=None)  # type: ignore[arg-type]
    assert "tiny" not in str(caught.value)


@pytest.mark.slow
def test_the_cli_lists_keys_without_secrets(tmp_path: Any) -> None:
    env = {
        **os.environ,
        "GRANTKEEPER_SERVICE_API_KEYS": ",".join(KEYS),
        "GRANTKEEPER_DATA_DIR": str(tmp_path),
    }
    listed = subprocess.run(
        [sys.executable, "-m", "grantkeeper", "service-keys", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    keys = json.loads(listed.stdout)
    assert [k["name"] for k in keys] == ["drive-worker", "reader", "admin", keys[3]["name"]]
    assert keys[0]["scopes"] == [DRIVE_APPDATA]
    assert keys[0]["operations"] == ["token", "refresh"]
    assert keys[2]["operations"] == ["manage"]
    assert keys[3]["name"].startswith("key-")
    for secret in (
        DRIVE_WORKER,
        READER,
        ADMIN,
        LEGACY,
        hashlib.sha256(DRIVE_WORKER.encode()).hexdigest(),
    ):
        assert secret not in listed.stdout
    table = subprocess.run(
        [sys.executable, "-m", "grantkeeper", "service-keys"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        cwd=tmp_path,
        check=True,
    )
    assert "drive-worker" in table.stdout
    assert ADMIN not in table.stdout
