"""A worker that finds a grant revoked (SyncKeeper, no web app) notifies the app's webhook."""

from __future__ import annotations

from typing import Any

import pytest
from standardwebhooks import Webhook

from grantkeeper.crypto import generate_key
from grantkeeper.errors import GrantRevoked
from grantkeeper.keeper.sync import SyncKeeper
from grantkeeper.webhooks import generate_secret

from ..lifecycle.webhook_sink import webhook_sink
from .conftest import World


def test_a_sync_worker_sends_grant_revoked(world: World, store_target: Any) -> None:
    secret = generate_secret()
    with webhook_sink() as sink:
        settings = world.settings.model_copy(
            update={
                "database_url": store_target.url,
                "database_schema": store_target.schema,
                "encryption_keys": [generate_key()],
                "webhook_url": sink.url,
                "webhook_secret": secret,
            }
        )
        with SyncKeeper(settings, clock=world.emulator.state.clock) as keeper:
            sub = keeper.sign_in(world.code(prompt="consent")).sub
            world.emulator.control.revoke_user(sub)
            world.emulator.control.advance_clock(7200)
            with pytest.raises(GrantRevoked) as caught:
                keeper.access_token(sub)
            assert caught.value.reason == "revoked"
        # Closing the keeper waited for the delivery.
        (received,) = sink.wait_for(1)
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "grant.revoked"
    assert payload["data"]["sub"] == sub
    assert payload["data"]["reason"] == "revoked"
