"""The ``grantkeeper`` command. Each command group lives in its own module under ``_cli``."""

from __future__ import annotations

import typer

from grantkeeper._cli.runner import Commands, main_guard, say
from grantkeeper._version import __version__

# Every command registered here or on a group is a runner command (grantkeeper._cli.runner):
# one way to print, to end on an error (code, advice, exit code 1) and on Ctrl-C.
app = Commands(
    name="grantkeeper",
    help="Keep Google grants for your users: sign-in with server auth codes, offline access.",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        say(f"grantkeeper {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Keep Google grants for your users: sign-in with server auth codes, offline access."""


from grantkeeper._cli.db import app as _db_app  # noqa: E402

app.add_typer(_db_app, name="db")

from grantkeeper._cli.emulator import emulator as _emulator  # noqa: E402

app.command(
    "emulator",
    short_help="Serve Google on localhost: OpenID, tokens, Drive, Photos and a control API.",
)(_emulator)

from grantkeeper._cli import lifecycle as _lifecycle  # noqa: E402

app.add_typer(_lifecycle.keys_app, name="keys")
app.command("sweep")(_lifecycle.sweep_command)
app.command("audit")(_lifecycle.audit_command)
app.command("revoke")(_lifecycle.revoke_command)

from grantkeeper._cli.worker import worker as _worker  # noqa: E402

app.command("worker")(_worker)

from grantkeeper._cli import access as _access  # noqa: E402

app.command("serve")(_access.serve)
app.add_typer(_access.users_app, name="users")
app.command("token")(_access.token)

from grantkeeper._cli.risc import app as _risc_app  # noqa: E402
from grantkeeper._cli.webhooks import app as _webhooks_app  # noqa: E402

app.add_typer(_risc_app, name="risc")

app.add_typer(_webhooks_app, name="webhooks")

from grantkeeper._cli.service_keys import service_keys as _service_keys  # noqa: E402

app.command("service-keys", short_help="The token API's keys: names and limits, no secrets.")(
    _service_keys
)

from grantkeeper._cli.demo import demo as _demo  # noqa: E402

app.command("demo")(_demo)


def main() -> None:
    with main_guard():
        app()
