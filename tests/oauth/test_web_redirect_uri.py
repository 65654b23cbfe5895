"""GRANTKEEPER_WEB_REDIRECT_URI: a web page that redirects to the consent page and back gets
codes bound to its own URL; the keeper must redeem them with that URL, not ``postmessage``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.errors import ConfigurationError, GrantkeeperError
from grantkeeper.keeper import Keeper
from grantkeeper.oauth.token_endpoint import is_web_redirect_uri, redirect_uri_for
from grantkeeper.settings import Settings

from ..app_world import store_of

PAGE = "http://127.0.0.1:8765/"


def test_web_codes_use_postmessage_unless_a_page_url_is_configured() -> None:
    assert redirect_uri_for("web") == "postmessage"
    assert redirect_uri_for("web", web_redirect_uri=PAGE) == PAGE
    # The mobile platforms ignore the web setting.
    assert redirect_uri_for("ios", web_redirect_uri=PAGE) == ""


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("postmessage", True),
        ("http://127.0.0.1:8000/", True),
        ("https://app.example.com/auth/callback", True),
        ("", False),
        ("/relative/path", False),
        ("javascript:alert(1)", False),
        ("ftp://example.com/", False),
        ("https://app.example.com/#fragment", False),
        ("https:///no-host", False),
    ],
)
def test_which_web_redirect_uris_are_accepted(value: str, valid: bool) -> None:
    assert is_web_redirect_uri(value) is valid
    if not valid:
        with pytest.raises(ValueError, match="web_redirect_uri"):
            redirect_uri_for("web", web_redirect_uri=value)


def test_a_bad_setting_fails_at_start_up(tmp_path: Path) -> None:
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(
        json.dumps(
            {
                "web": {
                    "client_id": "1-abc.apps.googleusercontent.com",
                    "client_secret": "GOCSPX-x",
                    "redirect_uris": [],
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            }
        )
    )
    # The settings refuse it themselves, before any provider (or server) is built.
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_WEB_REDIRECT_URI"):
        Settings(
            client_secrets_file=secrets_file,
            web_redirect_uri="javascript:alert(1)",
            _env_file=None,
        )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


def browser_code(emulator: EmulatorHandle, client_id: str, email: str) -> str:
    """What a browser brings back from the consent page to the page at ``PAGE``."""
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": PAGE,
            "response_type": "code",
            "scope": "openid email profile",
            "access_type": "offline",
            "state": "s1",
        }
    )
    location = emulator.control.authorize(f"/o/oauth2/v2/auth?{query}", email)
    assert location.startswith(PAGE + "?")
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == ["s1"]
    return params["code"][0]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_redirect_flow_code_is_redeemed_with_the_page_url(
    anyio_backend: str, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    web = emulator.control.create_client("web", redirect_uris=[PAGE])
    client_id = web["web"]["client_id"]
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(web))
    base = Settings(
        client_secrets_file=secrets_file,
        issuer=emulator.base_url,
        allowed_client_ids=[client_id],
        data_dir=tmp_path,
        encryption_keys=[generate_key()],
        _env_file=None,  # type: ignore[call-arg]
    )
    clock = emulator.state.clock
    # The default (popup codes, 'postmessage') cannot redeem a redirect-flow code.
    async with Keeper(base, clock=clock) as keeper:
        with pytest.raises(GrantkeeperError) as refused:
            await keeper.sign_in(browser_code(emulator, client_id, "page@example.com"), "web")
        assert "redirect" in refused.value.message.lower()
        assert await store_of(keeper).list_users() == []
    configured = base.model_copy(update={"web_redirect_uri": PAGE})
    async with Keeper(configured, clock=clock) as keeper:
        # Another account: consenting again would (rightly) bring no second refresh token.
        result = await keeper.sign_in(browser_code(emulator, client_id, "web@example.com"), "web")
        assert result.user["email"] == "web@example.com"
        assert result.offline
