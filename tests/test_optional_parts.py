"""The library core without its extras, and the reading commands without client secrets.

Each test runs Python in a subprocess whose imports of the extras' modules fail (a meta path
finder refuses them), as on a machine where only ``pip install grantkeeper`` ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grantkeeper.crypto import generate_key

from .cli_in_process import invoke

pytestmark = pytest.mark.slow

#: The import names the extras bring (server, postgres, emulator, demo).
EXTRAS_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "multipart",
    "python_multipart",
    "psycopg",
    "PIL",
    "jinja2",
    "trustme",
    "googleapiclient",
    "requests",
)

BLOCK = f"""
import sys

class _NotInstalled:
    blocked = {EXTRAS_MODULES!r}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def run_without_extras(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """A backend configured with nothing but a data directory and a key: no client secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env.update(
        GRANTKEEPER_DATA_DIR=str(tmp_path / "data"),
        GRANTKEEPER_ENCRYPTION_KEYS=generate_key("core"),
    )
    return env


def test_the_core_imports_and_keeps_grants_without_any_extra(bare_env: dict[str, str]) -> None:
    done = run_without_extras(
        """
        import asyncio
        from datetime import UTC, datetime, timedelta

        import grantkeeper
        from grantkeeper import GrantEvent, Keeper, KeeperCredentials, Listener, SyncKeeper
        from grantkeeper.cli import app  # every command registers
        from grantkeeper.keeper import SweepOptions

        async def main():
            async with Keeper() as keeper:
                assert await keeper.users() == []
                report = await keeper.sweep(SweepOptions())
                status = await keeper.key_status()
                print("ok", len(report.grants), status.primary)

        asyncio.run(main())
        loaded = [m for m in sys.modules if m.split(".")[0] in _NotInstalled.blocked]
        print("loaded", loaded)
        """,
        bare_env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["ok 0 core", "loaded []"]


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["serve"], "server"),
        (["serve", "--emulator"], "demo"),
        (["emulator"], "emulator"),
        (["demo"], "demo"),
    ],
)
def test_a_command_whose_extra_is_missing_names_it(
    bare_env: dict[str, str], command: list[str], extra: str
) -> None:
    done = run_without_extras(
        f"""
        sys.argv = ["grantkeeper", *{command!r}]
        from grantkeeper.cli import main
        main()
        """,
        bare_env,
    )
    assert done.returncode == 1
    assert f"pip install 'grantkeeper[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_postgres_without_its_extra_is_a_clear_error(bare_env: dict[str, str]) -> None:
    env = {**bare_env, "GRANTKEEPER_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"}
    done = run_without_extras(
        """
        sys.argv = ["grantkeeper", "users", "list"]
        from grantkeeper.cli import main
        main()
        """,
        env,
    )
    assert done.returncode == 1
    assert "pip install 'grantkeeper[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_reading_commands_need_no_client_secrets(bare_env: dict[str, str]) -> None:
    """``users``, ``audit``, ``keys status`` and a report-only ``sweep`` go through the keeper,
    whose provider client is built only when Google must be called."""
    assert cli(bare_env, "db", "upgrade").returncode == 0
    listed = invoke(bare_env, "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    keys = invoke(bare_env, "keys", "status", "--json")
    assert keys.returncode == 0, keys.stderr
    assert json.loads(keys.stdout)["primary"] == "core"
    swept = invoke(bare_env, "sweep", "--json")
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["total"] == 0
    audit = invoke(bare_env, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    assert [e["kind"] for e in json.loads(audit.stdout)] == ["sweep"]
    # Calling Google is what needs the client secrets, and it says so.
    token = cli(bare_env, "token", "110169484474386276334")
    assert token.returncode == 1
    assert "GRANTKEEPER_CLIENT_SECRETS_FILE" in token.stderr
