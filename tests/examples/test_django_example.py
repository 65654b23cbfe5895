"""examples/django_app against the emulator, in-process (Django's test client): first sign-in,
connect while logged in, an email that collides with a password account, a sub linked to
another user, Django's own session, and the nightly job with googleapiclient."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle
from grantkeeper.keeper.sync import SyncKeeper

from ..app_world import World, make_world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_app"
DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SCOPES = ["openid", "email", "profile", DRIVE_APPDATA]
XRW = {"X-Requested-With": "com.example.app"}


@pytest.fixture(scope="module")
def django_site(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example site set up once for this module: its settings, its migrated database."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if not settings.configured:
        # The site's settings module, its database in a temporary directory; configured
        # directly, so no DJANGO_SETTINGS_MODULE is left in the environment of later tests.
        sys.path.insert(0, str(EXAMPLE))
        site = importlib.import_module("site_config.settings")
        values = {name: getattr(site, name) for name in dir(site) if name.isupper()}
        values["DATABASES"]["default"]["NAME"] = tmp_path_factory.mktemp("django") / "db"
        settings.configure(**values)
        django.setup()
    # Django's own test practice: a fast hasher (the default is slow on purpose).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("migrate", verbosity=0)


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    return make_world(emulator, tmp_path, encryption_keys=[generate_key("example")])


@pytest.fixture
def keeper(django_site: None, world: World) -> Iterator[SyncKeeper]:
    from accounts import keeper as site_keeper  # type: ignore[import-not-found]
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    with SyncKeeper(world.settings, clock=world.emulator.state.clock) as opened:
        site_keeper.keeper = opened  # what get_keeper() hands the views
        yield opened
        site_keeper.keeper = None


def browser() -> Any:
    from django.test import Client

    return Client()


def sign_in(client: Any, world: World) -> Any:
    code = world.code(SCOPES)
    return client.post("/auth/google", {"code": code}, content_type="application/json", headers=XRW)


def post(client: Any, path: str, body: dict[str, str]) -> Any:
    return client.post(path, body, content_type="application/json")


def test_first_sign_in_creates_the_user_and_the_session(keeper: SyncKeeper, world: World) -> None:
    client = browser()
    answer = sign_in(client, world)
    assert answer.status_code == 200, answer.json()
    assert answer.json()["offline"] is True
    assert int(client.session["_auth_user_id"]) == answer.json()["user_id"]  # Django's session
    again = sign_in(browser(), world)  # a returning user: the same account
    assert again.json()["user_id"] == answer.json()["user_id"]
    assert post(client, "/auth/google", {"code": "4/x"}).status_code == 403  # no header


def test_an_email_collision_is_refused_until_the_user_connects_while_logged_in(
    keeper: SyncKeeper, world: World
) -> None:
    client = browser()
    account = {"email": world.email, "password": "correct horse"}
    assert post(client, "/register", account).status_code == 201
    refused = sign_in(client, world)
    assert refused.status_code == 403
    assert refused.json()["error"] == "sign_in_refused"
    assert "log in with your password" in refused.json()["detail"]

    logged_in = post(client, "/login", account)
    assert logged_in.status_code == 200
    connected = sign_in(client, world)  # "connect Google" while logged in
    assert connected.status_code == 200, connected.json()
    assert connected.json()["user_id"] == logged_in.json()["user_id"]
    assert connected.json()["offline"] is True  # the refusal gave back what Google issued


def test_a_google_account_linked_to_another_user_is_refused(
    keeper: SyncKeeper, world: World
) -> None:
    assert sign_in(browser(), world).status_code == 200
    other = browser()
    post(other, "/register", {"email": "bob@example.com", "password": "pw"})
    post(other, "/login", {"email": "bob@example.com", "password": "pw"})
    refused = sign_in(other, world)
    assert refused.status_code == 403
    assert "linked to another user" in refused.json()["detail"]


def test_the_nightly_job_lists_app_data_through_the_keeper(
    keeper: SyncKeeper, world: World
) -> None:
    from accounts import nightly  # type: ignore[import-not-found]

    assert sign_in(browser(), world).status_code == 200
    options = {
        "discoveryServiceUrl": world.emulator.base_url
        + "/discovery/v1/apis/{api}/{apiVersion}/rest",
        "static_discovery": False,
        "cache_discovery": False,
    }
    world.emulator.control.advance_clock(2 * 3600)  # the access token expired overnight
    assert nightly.run(keeper, **options) == {world.sub: []}
    assert world.refreshes() == 1
    world.emulator.control.revoke_user(world.sub)
    world.emulator.control.advance_clock(2 * 3600)
    assert nightly.run(keeper, **options) == {world.sub: "grant_revoked"}


@pytest.mark.usefixtures("django_site")
def test_the_migration_matches_the_models() -> None:
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # exits 1 on a change
