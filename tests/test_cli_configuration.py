"""Configuration mistakes fail loudly, in one line, as a user meets them: the CLI as a
subprocess (``serve`` before it binds its port, reading commands), and ``Settings()`` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grantkeeper.crypto import generate_key
from grantkeeper.errors import ConfigurationError
from grantkeeper.settings import Settings

from .cli_in_process import Ran, invoke
from .test_cli_access import app_env, cli, emulator, free_port  # noqa: F401  (fixtures)

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    env["GRANTKEEPER_DATA_DIR"] = str(tmp_path / "data")
    env.update(values)
    return env


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def one_line_error(result: subprocess.CompletedProcess[str] | Ran, code: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{code}: "), result.stderr
    assert len(lines) == 2, result.stderr  # the error, then what to do
    return lines[0]


def test_a_misspelt_variable_is_named_with_the_nearest_setting(tmp_path: Path) -> None:
    env = clean_env(tmp_path, GRANTKEEPER_DATABSE_URL="postgresql://gk:hunter2@db/x")
    line = one_line_error(invoke(env, "users", "list"), "config_invalid")
    assert "GRANTKEEPER_DATABSE_URL (in the environment) is not a grantkeeper setting" in line
    assert "did you mean GRANTKEEPER_DATABASE_URL?" in line
    assert "hunter2" not in line
    # Nothing fell back to the default SQLite in the data directory.
    assert not (tmp_path / "data" / "grantkeeper.sqlite3").exists()


def test_each_bad_field_is_one_clause_of_one_line(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        GRANTKEEPER_MAX_REQUEST_BYTES="10",
        GRANTKEEPER_MOBILE_REDIRECT_URI="https://app.example/cb",
        GRANTKEEPER_ISSUER="http://accounts.google.com",
    )
    line = one_line_error(run(env, "serve", "--port", str(free_port())), "config_invalid")
    assert "GRANTKEEPER_MAX_REQUEST_BYTES: input should be greater than or equal to 1024" in line
    assert "(got '10')" in line
    assert "GRANTKEEPER_MOBILE_REDIRECT_URI: " in line
    assert "GRANTKEEPER_ISSUER: the issuer must use https://" in line


def test_postgres_without_a_key_ring_stops_serve_in_one_line(tmp_path: Path) -> None:
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(
        json.dumps({"web": {"client_id": "c", "client_secret": "s", "token_uri": "https://t"}})
    )
    env = clean_env(
        tmp_path,
        GRANTKEEPER_DATABASE_URL="postgresql://gk:hunter2@127.0.0.1:5432/test",
        GRANTKEEPER_CLIENT_SECRETS_FILE=str(secrets),
    )
    line = one_line_error(run(env, "serve", "--port", str(free_port())), "config_invalid")
    assert "GRANTKEEPER_ENCRYPTION_KEYS must be set" in line
    assert "hunter2" not in line


def test_a_wrong_issuer_stops_serve_before_it_binds(
    app_env: dict[str, str],  # noqa: F811
) -> None:
    # A port nobody listens on: OpenID discovery cannot answer.
    env = {**app_env, "GRANTKEEPER_ISSUER": f"http://127.0.0.1:{free_port()}"}
    line = one_line_error(run(env, "serve", "--port", str(free_port())), "config_invalid")
    assert line.startswith(f"config_invalid: GRANTKEEPER_ISSUER={env['GRANTKEEPER_ISSUER']}:")
    assert "/.well-known/openid-configuration failed (provider_unavailable" in line


def test_an_explicit_env_file_is_read_from_anywhere(tmp_path: Path) -> None:
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    env_file = tmp_path / "etc" / "grantkeeper.env"
    env_file.parent.mkdir()
    db = tmp_path / "from-env-file.sqlite3"
    env_file.write_text(
        f"GRANTKEEPER_DATABASE_URL=sqlite:///{db}\n"
        f"GRANTKEEPER_ENCRYPTION_KEYS={generate_key('envfile')}\n"
    )
    env = clean_env(tmp_path, GRANTKEEPER_ENV_FILE=str(env_file))
    assert run(env, "db", "upgrade", cwd=elsewhere).returncode == 0
    assert db.exists()
    listed = run(env, "users", "list", "--json", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    missing = clean_env(tmp_path, GRANTKEEPER_ENV_FILE=str(tmp_path / "nope.env"))
    line = one_line_error(invoke(missing, "users", "list"), "config_invalid")
    assert "GRANTKEEPER_ENV_FILE=" in line


def test_a_typo_inside_the_env_file_is_named_with_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("GRANTKEEPER_ALLOWED_CLIENTS=abc\n")
    with pytest.raises(ConfigurationError) as raised:
        Settings(_env_file=env_file)
    message = str(raised.value)
    assert f"GRANTKEEPER_ALLOWED_CLIENTS (in {env_file})" in message
    assert "did you mean GRANTKEEPER_ALLOWED_CLIENT_IDS?" in message


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings(_env_file=None, database_url="mysql://root:hunter2@db/x", data_dir=tmp_path)
    assert "GRANTKEEPER_DATABASE_URL" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_tables_never_cut_a_sub_or_an_email(tmp_path: Path) -> None:
    import asyncio

    from grantkeeper.crypto import KeyRing
    from grantkeeper.store import GrantStore, UserProfile

    key = generate_key("tables")
    db = tmp_path / "wide.sqlite3"
    sub = "110169484474386276334"
    email = "ada.lovelace.countess.of.lovelace@analytical-engine.example.org"

    async def seed() -> None:
        store = await GrantStore.open(f"sqlite:///{db}", KeyRing.from_strings([key]), migrate=True)
        try:
            profile = UserProfile(sub=sub, email=email, email_verified=True, name="Ada")
            await store.record_sign_in(profile, "web.apps", {"openid"}, "1//rt", "ya29.x", None)
        finally:
            await store.close()

    asyncio.run(seed())
    env = clean_env(
        tmp_path, GRANTKEEPER_DATABASE_URL=f"sqlite:///{db}", GRANTKEEPER_ENCRYPTION_KEYS=key
    )
    env["COLUMNS"] = "80"
    listed = run(env, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert any(sub in line and email in line for line in listed.stdout.splitlines())
    audit = run(env, "audit")
    assert audit.returncode == 0, audit.stderr
    assert sub in audit.stdout
    # Every listing's --json and every --help: tests/test_cli_help.py, in-process.


def test_webhooks_secret_is_a_standard_webhooks_secret(tmp_path: Path) -> None:
    from standardwebhooks import Webhook

    result = invoke(clean_env(tmp_path), "webhooks", "secret")
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("whsec_")
    Webhook(secret)  # the reference library accepts it
