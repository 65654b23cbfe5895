"""The keeper's tests use the shared fixtures of tests/conftest.py: ``emulator``, ``world``,
``keeper`` (on both store backends) and ``store``."""

from __future__ import annotations

from ..app_world import DRIVE_APPDATA, OPENID, World

__all__ = ["DRIVE_APPDATA", "OPENID", "World"]
