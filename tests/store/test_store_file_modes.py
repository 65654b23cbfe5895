"""D10: the embedded SQLite database and its WAL files are readable by their owner only."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore, UserProfile
from grantkeeper.store.engine import create_engine, normalize_url

pytestmark = pytest.mark.anyio


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_embedded_database_is_created_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    async with await GrantStore.open_from_settings(settings) as store:
        await store.record_sign_in(
            UserProfile(sub="1"), "client", {"openid"}, None, "ya29", datetime.now(UTC)
        )
        files = sorted((tmp_path / "data").glob("grantkeeper.sqlite3*"))
        assert [f.name for f in files][:1] == ["grantkeeper.sqlite3"]
        for file in files:
            assert mode(file) == 0o600, file.name
    assert mode(tmp_path / "data") == 0o700


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    engine = create_engine(normalize_url(f"sqlite:///{path}"))
    await engine.dispose()
    assert mode(path) == 0o600
    keyring = KeyRing.from_strings([generate_key("k")])
    async with await GrantStore.open(f"sqlite:///{path}", keyring, migrate=True):
        pass
    assert mode(path) == 0o600
