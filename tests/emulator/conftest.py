"""Fixtures for the OAuth-core tests: a web and an iOS client and a raw-HTTP token client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from grantkeeper.emulator import EmulatorHandle

from .oauth_api import REDIRECT, OAuthApi


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[OAuthApi]:
    web = emulator.control.create_client(
        "web", redirect_uris=[REDIRECT], javascript_origins=["http://localhost:8080"]
    )["web"]
    ios = emulator.control.create_client("ios")
    with httpx.Client(base_url=emulator.base_url) as http:
        yield OAuthApi(emulator, web, ios, http)
