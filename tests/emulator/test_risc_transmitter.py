"""The RISC transmitter as a receiver's setup script and a test meet it: Google's stream
management API (google-protocol.md §6.1) and what ``/emulator/risc/send`` does to the grants."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .oauth_api import OAuthApi

PUSH = "https://schemas.openid.net/secevent/risc/delivery-method/push"
AUTH = {"Authorization": "Bearer service-account-jwt"}
DEAD = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


class Receiver:
    """A loopback RISC receiver that answers 202 and keeps every SET it is sent."""

    def __init__(self) -> None:
        received: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/risc"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()
    thread.join(timeout=10)


def rpc_error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def configure(api: OAuthApi, url: str) -> Any:
    return api.http.post(
        "/v1beta/stream:update",
        headers=AUTH,
        json={"delivery": {"delivery_method": PUSH, "url": url}, "events_requested": []},
    )


def send(api: OAuthApi, **event: Any) -> dict[str, Any]:
    event.setdefault("client_id", api.web["client_id"])
    answer = api.http.post("/emulator/risc/send", json=event)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def sub_of(api: OAuthApi, email: str = "alice@example.com") -> str:
    user = api.emulator.state.user_by_email(email)
    assert user is not None
    return user.sub


def test_stream_management_errors_use_googles_envelope(api: OAuthApi) -> None:
    unauthenticated = api.http.get("/v1beta/stream")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == rpc_error(401, "Unauthorized.", "UNAUTHENTICATED")
    for path in ("/v1beta/stream:update", "/v1beta/stream:verify"):
        answer = api.http.post(
            path, headers=AUTH | {"Content-Type": "application/json"}, content=b"{not json"
        )
        assert answer.status_code == 400, path
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert answer.json()["error"]["code"] == 400


def test_delivery_url_must_be_https_except_on_loopback(api: OAuthApi, receiver: Receiver) -> None:
    refused = configure(api, "http://receiver.example/risc")
    assert refused.status_code == 403
    assert refused.json() == rpc_error(
        403, "The delivery endpoint must be an HTTPS URL.", "PERMISSION_DENIED"
    )
    assert configure(api, "https://receiver.example/risc").status_code == 200
    for url in (receiver.url, "http://localhost:9/risc", "http://[::1]:9/risc"):
        assert configure(api, url).status_code == 200, url
    stream = api.http.get("/v1beta/stream", headers=AUTH).json()
    assert stream["delivery"]["url"] == "http://[::1]:9/risc"


def test_stream_status_disabled_drops_events(api: OAuthApi, receiver: Receiver) -> None:
    assert api.http.get("/v1beta/stream/status", headers=AUTH).status_code == 404
    assert configure(api, receiver.url).status_code == 200
    status = api.http.get("/v1beta/stream/status", headers=AUTH)
    assert (status.status_code, status.json()) == (200, {"status": "enabled"})

    bad = api.http.post("/v1beta/stream/status:update", headers=AUTH, json={"status": "paused"})
    assert bad.status_code == 403
    assert bad.json() == rpc_error(403, "Unsupported status. Invalid status.", "PERMISSION_DENIED")

    update = api.http.post(
        "/v1beta/stream/status:update", headers=AUTH, json={"status": "disabled"}
    )
    assert (update.status_code, update.json()) == (200, {"status": "disabled"})
    api.sign_in()
    dropped = send(api, event_type="sessions-revoked", sub=sub_of(api))
    assert (dropped["status"], dropped["attempts"]) == (None, 0)
    assert receiver.received == []

    # Not buffered: enabling again delivers only what is sent afterwards.
    api.http.post("/v1beta/stream/status:update", headers=AUTH, json={"status": "enabled"})
    delivered = send(api, event_type="sessions-revoked", sub=sub_of(api))
    assert delivered["status"] == 202
    assert receiver.received == [delivered["set"].encode()]


def test_tokens_revoked_applies_to_the_sets_client_only(api: OAuthApi, receiver: Receiver) -> None:
    configure(api, receiver.url)
    ours = api.sign_in()
    other_web = api.emulator.control.create_client("web", project_id="another-app")["web"]
    code = api.emulator.control.server_auth_code(
        other_web["client_id"], other_web["client_id"], "alice@example.com"
    )
    theirs = api.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": other_web["client_id"],
            "client_secret": other_web["client_secret"],
            "redirect_uri": "",
        },
    ).json()

    send(api, event_type="tokens-revoked", sub=sub_of(api))

    assert api.refresh(ours["refresh_token"]).json() == DEAD
    still = api.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": theirs["refresh_token"],
            "client_id": other_web["client_id"],
            "client_secret": other_web["client_secret"],
        },
    )
    assert still.status_code == 200
    # The consent went with the grant: the next sign-in returns a refresh token again.
    assert "refresh_token" in api.sign_in()


def test_tokens_revoked_for_the_mobile_client_reaches_its_server_grant(
    api: OAuthApi, receiver: Receiver
) -> None:
    configure(api, receiver.url)
    body = api.sign_in()
    send(api, event_type="tokens-revoked", sub=sub_of(api), client_id=api.ios["client_id"])
    assert api.refresh(body["refresh_token"]).json() == DEAD
    assert "refresh_token" in api.sign_in()


def test_token_revoked_forgets_the_consent(api: OAuthApi, receiver: Receiver) -> None:
    configure(api, receiver.url)
    body = api.sign_in()
    assert "refresh_token" not in api.sign_in()
    send(api, event_type="token-revoked", sub=sub_of(api), token=body["refresh_token"])
    assert api.refresh(body["refresh_token"]).json() == DEAD
    assert "refresh_token" in api.sign_in()


@pytest.mark.parametrize("event", ["account-disabled", "account-purged"])
def test_disabled_account_cannot_refresh_until_enabled(
    api: OAuthApi, receiver: Receiver, event: str
) -> None:
    configure(api, receiver.url)
    body = api.sign_in()
    send(api, event_type=event, sub=sub_of(api), reason="hijacking")
    refused = api.refresh(body["refresh_token"])
    assert (refused.status_code, refused.json()) == (400, DEAD)
    send(api, event_type="account-enabled", sub=sub_of(api))
    assert api.refresh(body["refresh_token"]).status_code == 200


def test_send_validation_error_names_fields_without_echoing_them(api: OAuthApi) -> None:
    secret = "1//0-secret-refresh-token-value"
    answer = api.http.post(
        "/emulator/risc/send",
        json={"client_id": api.web["client_id"], "event_type": "token-revoked", "token": [secret]},
    )
    assert answer.status_code == 400
    assert secret not in answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "token" in answer.json()["error_description"]
