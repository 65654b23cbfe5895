"""The life-cycle chores (sweep, disconnect, RISC delivery over HTTP) on the shared fixtures of
tests/conftest.py; here the app is also served over plain HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from grantkeeper.emulator import EmulatorHandle

from ..app_world import DRIVE_APPDATA, OPENID, World, make_world, quick_provider

__all__ = ["DRIVE_APPDATA", "OPENID", "World", "quick_provider"]


@pytest.fixture
def world(emulator: EmulatorHandle, tmp_path: Path) -> World:
    # The life-cycle tests also serve the keeper over plain HTTP on loopback.
    return make_world(emulator, tmp_path, allow_insecure_http=True)
