"""Every command of the typer app, walked in-process (CliRunner, no subprocess): each says what
it does, its ``--help`` is clean, and every listing takes ``--json`` and prints valid JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from grantkeeper.cli import app
from grantkeeper.crypto import generate_key

#: Every command, by what it prints. A new command fails the walk until it is placed here.
LISTINGS = {
    "users list",
    "audit",
    "keys status",
    "sweep",
    "service-keys",
    "webhooks events",
    "webhooks list",
}
"""List or report many things: a table for people, ``--json`` for scripts."""
ALWAYS_JSON = {
    "users show",
    "revoke",
    "risc register",
    "risc status",
    "risc enable",
    "risc disable",
}
"""Print one JSON document whatever the options."""
OTHERS = {
    "token",  # the bare token (``--json``: with expiry and scopes)
    "keys generate",  # one key
    "keys rotate",  # one line and a progress bar
    "webhooks secret",  # one secret
    "webhooks replay",  # a line per notification sent again (--json: the list)
    "webhooks deliver",  # one line, or a long-running deliverer
    "db upgrade",  # one line
    "db current",  # one line
    "risc verify",  # one line
    "serve",  # a server
    "emulator",  # a server
    "worker",  # a long-running process that logs
    "demo",  # a story
}


def leaf_commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command

    return walk(typer.main.get_command(app), [])


COMMANDS = dict(leaf_commands())


def test_every_command_is_placed_by_what_it_prints() -> None:
    placed = LISTINGS | ALWAYS_JSON | OTHERS
    assert set(COMMANDS) == placed, {
        "unplaced": set(COMMANDS) - placed,
        "gone": placed - set(COMMANDS),
    }


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_says_what_the_command_does_and_is_clean(name: str) -> None:
    command = COMMANDS[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    result = CliRunner().invoke(app, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    shown = result.output
    assert shown.startswith(f"Usage: grantkeeper {name} ")
    first_line = command.help.strip().splitlines()[0]
    assert first_line.split()[0] in shown  # the help text itself is shown
    for noise in ("<bool>", "<int range>", "<float range>", "list[str]", "╭", "Traceback"):
        assert noise not in shown, (name, noise)
    for param in command.params:
        if param.param_type_name == "option" and "--help" not in param.opts:
            assert (param.help or "").strip(), f"{name} {param.opts[0]} has no help"


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_every_listing_accepts_json(name: str) -> None:
    options = {opt for param in COMMANDS[name].params for opt in param.opts}
    assert "--json" in options


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty store in a fresh data directory, settings from nothing but these variables."""
    import os

    for name in list(os.environ):
        if name.startswith("GRANTKEEPER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("GRANTKEEPER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRANTKEEPER_ENCRYPTION_KEYS", generate_key("help"))
    monkeypatch.setenv("GRANTKEEPER_SERVICE_API_KEYS", "k" * 40)
    upgraded = CliRunner().invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output


@pytest.mark.usefixtures("store_env")
def test_every_listing_prints_valid_json() -> None:
    for name in sorted(LISTINGS):
        result = CliRunner().invoke(app, [*name.split(), "--json"])
        assert result.exit_code == 0, (name, result.output)
        json.loads(result.stdout)


@pytest.mark.usefixtures("store_env")
def test_a_failure_is_code_and_advice_on_stderr_and_exit_1_in_process_too() -> None:
    result = CliRunner().invoke(app, ["users", "show", "110169484474386276334"])
    assert result.exit_code == 1
    assert result.stdout == ""
    code_line, advice = result.stderr.strip().splitlines()[-2:]
    assert code_line.startswith("unknown_user: ")
    assert advice
