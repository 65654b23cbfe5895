"""``grantkeeper webhooks list|replay|deliver`` as subprocesses on a store with notifications."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from grantkeeper.clock import SYSTEM_CLOCK
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.store import GrantStore, OutboxMessage
from grantkeeper.webhooks import build_message, generate_secret

from .cli_in_process import Ran, invoke, script
from .lifecycle.webhook_sink import webhook_sink

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow


def cli(env: dict[str, str], *args: str) -> Ran:
    return invoke(env, "webhooks", *args)


def cli_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return script(env, "webhooks", *args)


async def seed_outbox(url: str, key: str) -> list[str]:
    """Three notifications; the oldest has failed every attempt."""
    store = await GrantStore.open(url, KeyRing.from_strings([key]), migrate=True)
    try:
        now = SYSTEM_CLOCK.now()
        made = [
            build_message("grant.revoked", {"sub": f"user-{n}", "reason": "revoked"}, at=now)
            for n in range(3)
        ]
        await store.enqueue_webhooks(
            [OutboxMessage(m.id, m.type, m.body, m.created_at) for m in made]
        )
        (claimed, *_) = await store.claim_webhooks("test", timedelta(seconds=60), 1)
        await store.finish_webhook(claimed.id, "test", delivered=False, error="HTTP 410")
        return [m.id for m in made]
    finally:
        await store.close()


def test_list_replay_and_deliver(tmp_path: Path) -> None:
    key = generate_key("cli")
    url = f"sqlite:///{tmp_path / 'grants.sqlite3'}"
    ids = asyncio.run(seed_outbox(url, key))
    secret = generate_secret()
    with webhook_sink() as sink:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
        env.update(
            GRANTKEEPER_DATABASE_URL=url,
            GRANTKEEPER_ENCRYPTION_KEYS=key,
            GRANTKEEPER_DATA_DIR=str(tmp_path / "data"),
            GRANTKEEPER_WEBHOOK_URL=sink.url,
            GRANTKEEPER_WEBHOOK_SECRET=secret,
        )
        everything = cli_process(env, "list", "--json")
        assert everything.returncode == 0, everything.stderr
        rows = json.loads(everything.stdout)
        assert [r["id"] for r in rows] == ids[::-1]  # newest first
        assert {r["state"] for r in rows} == {"pending", "failed"}
        assert set(rows[0]) == {
            "id",
            "type",
            "state",
            "attempts",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "last_error",
        }
        failed = json.loads(cli(env, "list", "--state", "failed", "--json").stdout)
        assert [(r["id"], r["last_error"], r["attempts"]) for r in failed] == [
            (ids[0], "HTTP 410", 1)
        ]
        shown = cli(env, "list", "--limit", "2")
        assert shown.returncode == 0, shown.stderr
        assert ids[2] in shown.stdout
        assert ids[1] in shown.stdout
        assert ids[0] not in shown.stdout
        assert "2 notification(s)" in shown.stdout

        unknown = cli(env, "replay", ids[1], "msg_unknown")
        assert unknown.returncode == 1
        assert unknown.stderr.startswith("unknown_webhook: ")
        assert "msg_unknown" in unknown.stderr
        bad_state = cli(env, "list", "--state", "lost")
        assert bad_state.returncode == 1
        assert bad_state.stderr.startswith("invalid_request: ")

        replayed = cli(env, "replay", "--failed")
        assert replayed.returncode == 0, replayed.stderr
        assert f"{ids[0]}  grant.revoked  pending again" in replayed.stdout

        delivered = cli_process(env, "deliver", "--once")
        assert delivered.returncode == 0, delivered.stderr
        assert "delivered 3, to retry 0, failed 0" in delivered.stdout
        arrived = sink.wait_for(3)
    assert sorted(r.headers["webhook-id"] for r in arrived) == sorted(ids)
    for request in arrived:
        Webhook(secret).verify(request.body, request.headers)
    done = json.loads(cli(env, "list", "--state", "delivered", "--json").stdout)
    assert len(done) == 3
    assert secret not in everything.stdout + delivered.stdout + delivered.stderr
