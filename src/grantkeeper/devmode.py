"""Dev mode: an emulator beside the keeper, and settings that point at it.

``grantkeeper serve --emulator`` and ``grantkeeper demo`` use this; so can your own tests. The
keeper's code path is the production one: only the issuer URL (and so every endpoint found by
OpenID discovery) differs.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from grantkeeper.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from grantkeeper.outbound_http import provider_transport
from grantkeeper.settings import Settings


@dataclass(frozen=True)
class DevWorld:
    """A running emulator with an app registered at it, and the keeper settings for it."""

    emulator: EmulatorHandle
    settings: Settings
    web_client_id: str
    ios_client_id: str
    android_client_id: str
    service_key: str

    def keeper_transport(self) -> httpx.AsyncBaseTransport | None:
        """The transport a keeper needs to reach this emulator: one that trusts its CA when it
        serves HTTPS (``Keeper(world.settings, transport=world.keeper_transport())``)."""
        context = self.emulator.ssl_context()
        return provider_transport(verify=context) if context is not None else None


def register_app(emulator: EmulatorHandle, data_dir: Path, **overrides: object) -> DevWorld:
    """Register a web (server) client and iOS/Android clients at ``emulator``, write the web
    client's ``client_secret.json`` into ``data_dir``, and build settings that use them."""
    control = emulator.control
    # A page that redirects to the consent page and back redeems its codes with its own URL.
    page = overrides.get("web_redirect_uri")
    extra = [page] if isinstance(page, str) and page != "postmessage" else []
    web = control.create_client(
        "web",
        redirect_uris=[emulator.base_url + "/", "http://127.0.0.1/", "http://localhost/", *extra],
    )
    ios = control.create_client("ios")
    android = control.create_client("android")
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets_file = data_dir / "client_secret_dev.json"
    secrets_file.unlink(missing_ok=True)
    # Created with mode 0600 from the start: the client secret is never readable by others.
    descriptor = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(web, handle, indent=2)
    service_key = secrets.token_urlsafe(24)
    web_client_id: str = web["web"]["client_id"]
    values: dict[str, object] = {
        "client_secrets_file": secrets_file,
        "issuer": emulator.base_url,
        "allowed_client_ids": [ios["client_id"], android["client_id"], web_client_id],
        "data_dir": data_dir,
        "allow_insecure_http": True,
        "service_api_keys": [service_key],
    }
    values.update(overrides)
    settings = Settings(**values)
    return DevWorld(
        emulator, settings, web_client_id, ios["client_id"], android["client_id"], service_key
    )


@contextmanager
def dev_world(
    data_dir: Path, config: EmulatorConfig | None = None, **overrides: object
) -> Iterator[DevWorld]:
    """Start an emulator on a free port and register an app at it (see :func:`register_app`)."""
    with run_emulator(config) as emulator:
        yield register_app(emulator, data_dir, **overrides)
