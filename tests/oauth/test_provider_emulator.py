"""OAuthProvider against the running emulator over real HTTP: the whole code path the keeper
uses with Google, only the issuer URL differs."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from grantkeeper.emulator import EmulatorHandle
from grantkeeper.errors import InvalidCode, ProviderError, UntrustedIdToken
from grantkeeper.oauth import ClientSecrets, OAuthProvider, RefreshTokenRejected, normalize_scopes

from .scene import SCOPES, Scene, make_scene

pytestmark = pytest.mark.anyio


@pytest.fixture
def scene(emulator: EmulatorHandle, tmp_path: Path) -> Scene:
    return make_scene(emulator.base_url, emulator.control, tmp_path)


async def test_server_auth_code_to_verified_identity_refresh_and_revoke(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = scene.code()
    async with scene.provider() as provider:
        metadata = await provider.discover()
        assert metadata.issuer == scene.base_url
        assert metadata.token_endpoint == f"{scene.base_url}/token"

        signed_in = await provider.sign_in(code, "ios")
        tokens, identity = signed_in.tokens, signed_in.identity
        assert identity.sub == scene.user["sub"]
        assert identity.email == "ada@example.com"
        assert identity.email_verified is True
        assert identity.name == "Ada Lovelace"
        assert identity.hd == "example.com"
        assert identity.aud == scene.web_id
        assert identity.azp == scene.ios_id
        assert tokens.refresh_token is not None
        assert tokens.scopes is not None
        assert normalize_scopes(SCOPES) <= tokens.scopes
        assert tokens.expires_in == 3599
        assert tokens.expires_at is not None

        refreshed = await provider.refresh(tokens.refresh_token)
        assert refreshed.access_token != tokens.access_token
        assert refreshed.refresh_token is None  # Google does not rotate

        await provider.revoke(tokens.refresh_token)
        await provider.revoke(tokens.refresh_token)  # already revoked: still done
        with pytest.raises(RefreshTokenRejected) as caught:
            await provider.refresh(tokens.refresh_token)
        assert caught.value.reason == "revoked"
        assert caught.value.code == "grant_revoked"

    secrets = (code, tokens.access_token, tokens.refresh_token, scene.web_secret)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "provider token:authorization_code attempt 1: HTTP 200" in logged
    for secret in secrets:
        assert secret not in logged
    # An invalid_grant is never retried.
    assert scene.control.stats()["token"]["refresh_token"] == 2


async def test_web_popup_code_with_postmessage(scene: Scene) -> None:
    code = scene.control.server_auth_code(scene.web_id, None, "ada@example.com", SCOPES)
    async with scene.provider() as provider:
        signed_in = await provider.sign_in(code, "web")
    assert signed_in.identity.azp == scene.web_id


async def test_used_and_malformed_codes_are_invalid_code(scene: Scene) -> None:
    code = scene.code()
    async with scene.provider() as provider:
        await provider.exchange_code(code, "android")
        with pytest.raises(InvalidCode, match="invalid_grant: Bad Request"):
            await provider.exchange_code(code, "android")
        with pytest.raises(InvalidCode, match="Malformed auth code"):
            await provider.exchange_code("4%2F0Aencoded", "ios")
    assert scene.control.stats()["token"]["authorization_code"] == 3


async def test_browser_code_redeemed_with_postmessage_is_a_redirect_uri_mismatch(
    scene: Scene,
) -> None:
    scene.control.create_user("bob@example.com")
    location = scene.control.authorize(
        f"/o/oauth2/v2/auth?client_id={scene.web_id}&redirect_uri=http://localhost:4000/callback"
        "&response_type=code&scope=openid%20email&access_type=offline",
        "bob@example.com",
    )
    code = parse_qs(urlsplit(location).query)["code"][0]
    async with scene.provider() as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.exchange_code(code, "web")
    assert type(caught.value) is ProviderError
    assert "redirect_uri_mismatch" in str(caught.value)
    assert "'postmessage' used for platform web" in str(caught.value)


async def test_wrong_client_secret_is_a_configuration_error_without_the_secret(
    scene: Scene,
) -> None:
    wrong = ClientSecrets(
        client_type="web",
        client_id=scene.web_id,
        client_secret="GOCSPX-wrong-secret",
        token_uri=f"{scene.base_url}/token",
    )
    async with OAuthProvider(scene.settings(), client_secrets=wrong, clock=scene.clock) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.exchange_code(scene.code(), "ios")
    message = str(caught.value)
    assert "invalid_client" in message
    assert "GRANTKEEPER_CLIENT_SECRETS_FILE" in message
    assert "GOCSPX-wrong-secret" not in message
    assert scene.web_secret not in message


async def test_app_client_must_be_allowed_as_azp(scene: Scene) -> None:
    async with scene.provider(allowed_client_ids=[]) as provider:
        with pytest.raises(UntrustedIdToken) as caught:
            await provider.sign_in(scene.code(), "ios")
    assert "azp" in caught.value.reason


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("alg_none", "algorithm 'none' is not allowed"),
        ("wrong_key", "signature: bad_signature"),
        ("unknown_kid", "unknown key id"),
        ("wrong_iss", "issuer 'https://accounts.google.com.evil.example'"),
        ("wrong_aud", "audience"),
        ("wrong_azp", "authorized party (azp)"),
        ("expired", "expired: exp is"),
        ("iat_future", "iat is"),
    ],
)
async def test_emulator_id_token_faults_are_rejected(scene: Scene, fault: str, reason: str) -> None:
    scene.control.add_fault("id_token", id_token=fault)
    async with scene.provider() as provider:
        with pytest.raises(UntrustedIdToken) as caught:
            await provider.sign_in(scene.code(), "ios")
    assert reason in caught.value.reason
    if fault == "expired":
        assert "leeway is 60 s" in caught.value.reason


async def test_unknown_kid_refetches_the_jwks_at_most_once_per_interval(scene: Scene) -> None:
    async with scene.provider() as provider:
        await provider.sign_in(scene.code(), "ios")
        assert scene.control.stats()["certs"] == 1

        # A forged kid right after a fetch: no new fetch.
        scene.control.add_fault("id_token", id_token="unknown_kid", count=3)
        with pytest.raises(UntrustedIdToken) as caught:
            await provider.sign_in(scene.code(), "ios")
        assert "re-fetch rate-limited" in caught.value.reason
        assert scene.control.stats()["certs"] == 1

        # Once the interval has passed, one re-fetch; the next forged kid waits again.
        scene.clock.advance(30)
        with pytest.raises(UntrustedIdToken) as caught:
            await provider.sign_in(scene.code(), "ios")
        assert "not in the freshly fetched JWKS" in caught.value.reason
        with pytest.raises(UntrustedIdToken):
            await provider.sign_in(scene.code(), "ios")
        assert scene.control.stats()["certs"] == 2


async def test_key_rotation_is_picked_up_by_a_refetch(scene: Scene) -> None:
    async with scene.provider() as provider:
        first = await provider.sign_in(scene.code(), "ios")
        scene.control.rotate_keys()
        scene.clock.advance(31)
        second = await provider.sign_in(scene.code(), "ios")
    assert first.identity.sub == second.identity.sub
    assert scene.control.stats()["certs"] == 2


async def test_discovery_and_keys_are_cached_per_cache_control(scene: Scene) -> None:
    async with scene.provider() as provider:
        for _ in range(3):
            await provider.sign_in(scene.code(), "ios")
        stats = scene.control.stats()
        assert (stats["discovery"], stats["certs"]) == (1, 1)
        scene.clock.advance(3600)  # the emulator's discovery max-age
        await provider.discover()
        assert scene.control.stats()["discovery"] == 2


async def test_a_failed_rediscovery_keeps_the_cached_metadata(scene: Scene) -> None:
    async with scene.provider(attempts=1) as provider:
        metadata = await provider.discover()
        scene.clock.advance(3600)
        scene.control.add_fault("discovery", status=500)
        assert await provider.discover() == metadata
