"""Dev mode: an emulator and an app registered at it."""

from __future__ import annotations

import stat
from pathlib import Path

from grantkeeper.devmode import dev_world


def test_dev_mode_client_secret_file_is_private(tmp_path: Path) -> None:
    with dev_world(tmp_path / "dev") as world:
        mode = stat.S_IMODE(world.settings.client_secrets_file.stat().st_mode)  # type: ignore[union-attr]
    assert mode == 0o600
