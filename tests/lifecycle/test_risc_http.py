"""End to end over real HTTP: the emulator (Google) pushes security events to the keeper's
``POST /v1/google/risc``; webhooks reach the app; metrics show it; the CLI reads the audit log,
sweeps and disconnects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook

from grantkeeper.emulator.server import bind, url_of
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings
from grantkeeper.web import create_app
from grantkeeper.webhooks import generate_secret

from ..cli_in_process import Ran, invoke
from .conftest import World
from .webhook_sink import WebhookSink, webhook_sink

SERVICE_KEY = "svc-key-for-lifecycle-tests-0123"


@dataclass
class Served:
    url: str
    settings: Settings
    sink: WebhookSink
    secret: str
    world: World

    def keeper(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def emulator(self) -> httpx.Client:
        return httpx.Client(base_url=self.world.emulator.base_url, timeout=30)

    def sign_in(self, email: str | None = None) -> str:
        with self.keeper() as client:
            answer = client.post(
                "/v1/google/signin",
                json={"code": self.world.code(email=email), "platform": "ios"},
                headers={"X-Requested-With": "XMLHttpRequest"},
            )
        assert answer.status_code == 200, answer.text
        sub: str = answer.json()["user"]["sub"]
        return sub

    def send(self, **event: Any) -> dict[str, Any]:
        with self.emulator() as client:
            answer = client.post(
                "/emulator/risc/send", json={"client_id": self.world.web_client_id, **event}
            )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def token_status(self, sub: str) -> httpx.Response:
        with self.keeper() as client:
            return client.get(
                f"/v1/users/{sub}/token", headers={"Authorization": f"Bearer {SERVICE_KEY}"}
            )

    def webhooks(self, count: int) -> list[dict[str, Any]]:
        verifier = Webhook(self.secret)
        return [verifier.verify(r.body, r.headers) for r in self.sink.wait_for(count)]

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
        s = self.settings
        env.update(
            GRANTKEEPER_CLIENT_SECRETS_FILE=str(s.client_secrets_file),
            GRANTKEEPER_ISSUER=s.issuer,
            GRANTKEEPER_DATABASE_URL=str(s.database_url),
            GRANTKEEPER_DATA_DIR=str(s.data_dir),
            GRANTKEEPER_ALLOWED_CLIENT_IDS=",".join(s.allowed_client_ids),
        )
        return env

    def cli(self, *args: str) -> Ran:
        """The command in this process (see tests/cli_in_process.py)."""
        return invoke(self.cli_env(), *args)

    def cli_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command as the script, in a process of its own."""
        s = self.settings
        return subprocess.run(
            [sys.executable, "-m", "grantkeeper", *args],
            env=self.cli_env(),
            cwd=s.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def served(world: World, tmp_path: Path) -> Iterator[Served]:
    secret = generate_secret()
    with webhook_sink() as sink:
        settings = world.settings.model_copy(
            update={
                "database_url": f"sqlite:///{tmp_path / 'keeper.sqlite3'}",
                "webhook_url": sink.url,
                "webhook_secret": secret,
                "service_api_keys": [SERVICE_KEY],
            }
        )
        keeper = Keeper(settings)
        app = create_app(keeper, owns_keeper=True)
        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "keeper did not start"
            assert time.monotonic() < deadline, "keeper did not start in time"
            time.sleep(0.01)
        try:
            yield Served(url_of(sock), settings, sink, secret, world)
        finally:
            server.should_exit = True
            thread.join(timeout=20)
            sock.close()


def _register(served: Served) -> None:
    with served.emulator() as client:
        answer = client.post(
            "/emulator/risc/receivers",
            json={"client_id": served.world.web_client_id, "url": served.url + "/v1/google/risc"},
        )
    assert answer.status_code == 200


def test_google_pushes_events_and_the_grant_follows(served: Served) -> None:
    _register(served)
    sub = served.sign_in()
    assert served.token_status(sub).status_code == 200

    # Google revoked the user's tokens: the keeper stops handing out access tokens.
    sent = served.send(event_type="tokens-revoked", sub=sub)
    assert sent["status"] == 202
    answer = served.token_status(sub)
    assert answer.status_code == 409
    assert answer.json()["code"] == "grant_revoked"
    assert answer.json()["reason"] == "risc:tokens-revoked"
    revoked, security = sorted(served.webhooks(2), key=lambda p: str(p["type"]))
    assert revoked["type"] == "grant.revoked"
    assert revoked["data"]["sub"] == sub
    assert revoked["data"]["source"] == "risc"
    assert security["type"] == "grant.security_event"
    assert security["data"]["action"] == "end_sessions"

    # Redelivery of the same event: acknowledged, nothing happens.
    again = served.send(event_type="tokens-revoked", sub=sub, jti=sent["jti"])
    assert again["status"] == 202
    assert json.loads(again["response"])["duplicate"] is True

    # The user signs in again: the grant recovers (a webhook says so).
    assert served.sign_in() == sub
    assert served.token_status(sub).status_code == 200
    assert served.webhooks(3)[-1]["type"] == "grant.recovered"

    # Google revokes that one refresh token: the emulator names it by its double hash.
    sent = served.send(event_type="token-revoked", sub=sub)
    assert sent["status"] == 202
    assert served.token_status(sub).json()["reason"] == "risc:token-revoked"

    # A forged body is refused with RFC 8935's error code, as problem+json.
    with served.keeper() as client:
        forged = client.post(
            "/v1/google/risc",
            content=sent["set"][:-8] + "AAAAAAAA",
            headers={"Content-Type": "application/secevent+jwt"},
        )
    assert forged.status_code == 400
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert forged.json()["err"] == "invalid_key"

    with served.keeper() as client:
        metrics_text = client.get("/metrics").text
    assert 'grantkeeper_risc_events_total{event="tokens-revoked",outcome="revoked"}' in metrics_text
    assert 'grantkeeper_grants{state="revoked"} 1.0' in metrics_text

    # The audit log, read with the CLI: every event, never a token.
    audit = served.cli("audit", sub, "--json")
    assert audit.returncode == 0, audit.stderr
    events = json.loads(audit.stdout)
    risc = [(e["detail"].get("event"), e["outcome"]) for e in events if e["kind"] == "risc"]
    assert risc == [
        ("token-revoked", "revoked"),
        (None, "duplicate"),
        ("tokens-revoked", "revoked"),
    ]
    assert sent["set"] not in audit.stdout
    assert "1//" not in audit.stdout
    assert "ya29." not in audit.stdout


def test_stream_verification_reaches_the_receiver(served: Served) -> None:
    with served.emulator() as client:
        update = client.post(
            "/v1beta/stream:update",
            headers={"Authorization": "Bearer service-account-jwt"},
            json={
                "delivery": {
                    "delivery_method": "https://schemas.openid.net/secevent/risc/delivery-method/push",
                    "url": served.url + "/v1/google/risc",
                },
                "events_requested": [
                    "https://schemas.openid.net/secevent/risc/event-type/verification"
                ],
            },
        )
        assert update.status_code == 200
        verify = client.post(
            "/v1beta/stream:verify",
            headers={"Authorization": "Bearer service-account-jwt"},
            json={"state": "setup-check-7"},
        )
        assert verify.status_code == 200, verify.text
    audit = served.cli("audit", "--kind", "risc", "--json")
    assert audit.returncode == 0, audit.stderr
    (event,) = json.loads(audit.stdout)
    assert event["detail"]["event"] == "verification"
    assert event["detail"]["state"] == "setup-check-7"


@pytest.mark.slow  # one command as the script
def test_cli_revoke_and_sweep(served: Served) -> None:
    sub = served.sign_in()
    world = served.world
    world.emulator.control.add_fault("revoke", status=503, count=None)
    revoke = served.cli_process("revoke", sub)
    assert revoke.returncode == 0, revoke.stderr
    assert json.loads(revoke.stdout)["revocation_pending"] is True
    assert served.token_status(sub).json()["reason"] == "disconnect"

    sweep = served.cli("sweep", "--json")
    assert sweep.returncode == 0, sweep.stderr
    report = json.loads(sweep.stdout)
    assert report["counts"]["pending"] == 1
    assert report["actions"] == {"revocation_still_pending": 1}

    world.emulator.control.clear_faults()
    sweep = served.cli("sweep")
    assert sweep.returncode == 0, sweep.stderr
    assert "revocation_completed: 1" in sweep.stdout
    assert world.stats()["live_refresh_tokens_per_user"].get(sub, 0) == 0

    forget = served.cli("revoke", sub, "--forget")
    assert forget.returncode == 0, forget.stderr
    assert json.loads(forget.stdout)["forgotten"] is True
    unknown = served.cli("revoke", sub)
    assert unknown.returncode == 1
    assert "unknown_user" in unknown.stderr
