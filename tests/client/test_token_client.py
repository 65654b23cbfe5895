"""TokenClient and AsyncTokenClient against a served keeper: answers, typed errors, retries
with Retry-After, and credentials shared by threads."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from googleapiclient.discovery import build

from grantkeeper.client import AsyncTokenClient, RetryPolicy, ServiceProblem, TokenClient
from grantkeeper.client import _sync as sync_module
from grantkeeper.errors import (
    GrantRevoked,
    KeeperUnreachable,
    MissingScopes,
    ProviderUnavailable,
    Unauthorized,
    UnknownUser,
)

from ..app_world import DRIVE_APPDATA, OPENID
from .conftest import SERVICE_KEY, Served

PHOTOS = "https://www.googleapis.com/auth/photoslibrary.appendonly"


def drive(served: Served, credentials: Any) -> Any:
    return build(
        "drive",
        "v3",
        credentials=credentials,
        discoveryServiceUrl=served.world.emulator.base_url
        + "/discovery/v1/apis/{api}/{apiVersion}/rest",
        static_discovery=False,
        cache_discovery=False,
    )


def test_tokens_refresh_and_disconnect(served: Served) -> None:
    sub = served.sign_in()
    with TokenClient(served.url, SERVICE_KEY) as client:
        token = client.access_token(sub, [DRIVE_APPDATA])
        assert token.token.startswith("ya29.")
        assert token.token not in repr(token)
        assert token.expires_at > datetime.now(UTC)
        assert DRIVE_APPDATA in token.scopes
        assert token.sub == sub
        renewed = client.refresh(sub, rejected=token.token)
        assert renewed.token != token.token
        assert client.refresh(sub, rejected=token.token).token == renewed.token
        assert served.world.refreshes() == 1
        gone = client.disconnect(sub)
        assert gone.revoked_at_provider
        assert not gone.revocation_pending
        with pytest.raises(GrantRevoked) as caught:
            client.access_token(sub)
        assert caught.value.reason == "disconnect"


def test_problems_come_back_as_the_library_exceptions(served: Served) -> None:
    sub = served.sign_in([*OPENID, DRIVE_APPDATA])
    with TokenClient(served.url, SERVICE_KEY) as client:
        with pytest.raises(UnknownUser) as unknown:
            client.access_token("nobody")
        with pytest.raises(MissingScopes) as missing:
            client.access_token(sub, PHOTOS)
    assert unknown.value.code == "unknown_user"
    assert unknown.value.status == 404
    assert unknown.value.advice == UnknownUser.advice
    assert not unknown.value.retryable
    assert missing.value.missing == [PHOTOS]
    assert missing.value.status == 403
    stranger = TokenClient(served.url, "not-the-key-0123456789")
    with stranger, pytest.raises(Unauthorized):
        stranger.access_token(sub)
    lost = TokenClient(served.url + "/nowhere", SERVICE_KEY)
    with lost, pytest.raises(ServiceProblem) as unknown_route:
        lost.access_token(sub)
    assert unknown_route.value.code == "not_found"
    assert unknown_route.value.status == 404


def test_credentials_shared_by_threads_refresh_once(served: Served) -> None:
    """Eight threads on one client and one credentials object meet a 401 together."""
    sub = served.sign_in()
    with TokenClient(served.url, SERVICE_KEY) as client:
        credentials = client.credentials(sub)
        served.world.emulator.control.advance_clock(2 * 3600)
        folders: list[str] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                service = drive(served, credentials)
                folders.append(service.files().get(fileId="appfolder").execute()["id"])
                service.close()
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert len(set(folders)) == 1
    assert len(folders) == 8
    assert served.world.refreshes() == 1


def test_the_async_client(served: Served) -> None:
    sub = served.sign_in()

    async def main() -> None:
        async with AsyncTokenClient(served.url, SERVICE_KEY) as client:
            token = await client.access_token(sub)
            with pytest.raises(UnknownUser):
                await client.refresh("nobody")
            credentials = await client.credentials(sub)
            served.world.emulator.control.advance_clock(2 * 3600)

            def list_app_data() -> str:
                service = drive(served, credentials)
                folder: str = service.files().get(fileId="appfolder").execute()["id"]
                service.close()
                return folder

            assert await asyncio.to_thread(list_app_data)
            assert credentials.token != token.token
            # google-auth's refresh blocks: on the loop's own thread it is refused, not hung.
            with pytest.raises(RuntimeError, match="worker thread"):
                credentials.refresh(None)
            gone = await client.disconnect(sub, forget=True)
            assert gone.forgotten

    asyncio.run(main())
    assert served.world.refreshes() == 1


# -- retries (a stand-in keeper: the answers are scripted) --------------------------------------


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handle), seen


def unavailable(retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {
        "type": "https://grantkeeper.dev/problems/provider_unavailable",
        "title": "The identity provider is unavailable",
        "status": 503,
        "code": "provider_unavailable",
        "detail": "Google answered 503.",
        "advice": ProviderUnavailable.advice,
    }
    return httpx.Response(
        503, json=body, headers={**headers, "Content-Type": "application/problem+json"}
    )


TOKEN = {
    "access_token": "ya29.scripted",
    "token_type": "Bearer",
    "expires_at": "2030-01-01T00:00:00Z",
    "scopes": ["openid"],
}


def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_module.time, "sleep", waits.append)
    transport, seen = scripted(unavailable("2"), unavailable(None), httpx.Response(200, json=TOKEN))
    with TokenClient("https://keeper.test", SERVICE_KEY, transport=transport) as client:
        assert client.access_token("42").token == "ya29.scripted"
    assert len(seen) == 3
    assert waits[0] == 2.0
    assert 0 <= waits[1] <= 1.0  # no Retry-After: jittered backoff
    assert seen[0].headers["authorization"] == f"Bearer {SERVICE_KEY}"


def test_a_long_retry_after_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module.time, "sleep", lambda _: pytest.fail("slept"))
    transport, seen = scripted(unavailable("120"))
    with (
        TokenClient("https://keeper.test", SERVICE_KEY, transport=transport) as client,
        pytest.raises(ProviderUnavailable) as caught,
    ):
        client.access_token("42")
    assert caught.value.retryable
    assert caught.value.retry_after == 120.0  # type: ignore[attr-defined]
    assert len(seen) == 1


def test_retries_end_after_the_policy_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module.time, "sleep", lambda _: None)
    transport, seen = scripted(unavailable("1"), unavailable("1"))
    policy = RetryPolicy(attempts=2)
    with (
        TokenClient("https://keeper.test", SERVICE_KEY, transport=transport, retry=policy) as c,
        pytest.raises(ProviderUnavailable),
    ):
        c.access_token("42")
    assert len(seen) == 2


def test_an_unreachable_keeper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module.time, "sleep", lambda _: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(refuse)
    with (
        TokenClient("https://keeper.test", SERVICE_KEY, transport=transport) as client,
        pytest.raises(KeeperUnreachable) as caught,
    ):
        client.refresh("42", rejected="ya29.old")
    assert caught.value.retryable
    assert "ya29.old" not in str(caught.value)
    html = httpx.MockTransport(lambda r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with (
        TokenClient("https://keeper.test", SERVICE_KEY, transport=html) as client,
        pytest.raises(KeeperUnreachable),
    ):
        client.access_token("42")
