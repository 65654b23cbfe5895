"""``grantkeeper risc register|status|enable|disable|verify``: the Cross-Account Protection
stream at Google (or the emulator), authenticated as a service account."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from grantkeeper._cli.runner import Commands, echo_json, say

if TYPE_CHECKING:
    from grantkeeper.keeper import RiscStream

app = Commands(
    help="Register the RISC (Cross-Account Protection) receiver with Google.", no_args_is_help=True
)

_KEY = typer.Option(
    ...,
    "--service-account",
    help="The service account's JSON key (role RISC Configuration Admin, same project as the "
    "Sign-In clients).",
    exists=True,
    dir_okay=False,
)


def _stream(key: Path) -> RiscStream:
    from grantkeeper.keeper import RiscStream, service_account_jwt
    from grantkeeper.settings import Settings

    return RiscStream(Settings().issuer, service_account_jwt(key))


@app.command("register")
def register(
    url: str = typer.Argument(..., help="The receiver: https://YOUR-KEEPER/v1/google/risc"),
    service_account: Path = _KEY,
    event: list[str] = typer.Option(
        [],
        "--event",
        help="An event to request (repeatable; default: every one the keeper acts on).",
    ),
) -> None:
    """Point Google's security events for this project at URL (stream:update)."""
    from grantkeeper.keeper import DEFAULT_EVENTS

    stream = _stream(service_account)
    try:
        echo_json(stream.register(url, event or list(DEFAULT_EVENTS)))
    finally:
        stream.close()


@app.command("status")
def status(service_account: Path = _KEY) -> None:
    """The stream's delivery URL, events and whether it is enabled."""
    stream = _stream(service_account)
    try:
        echo_json(stream.read())
    finally:
        stream.close()


@app.command("enable")
def enable(service_account: Path = _KEY) -> None:
    """Enable the stream (a disabled stream drops events; Google does not keep them)."""
    stream = _stream(service_account)
    try:
        echo_json(stream.set_status(True))
    finally:
        stream.close()


@app.command("disable")
def disable(service_account: Path = _KEY) -> None:
    """Disable the stream."""
    stream = _stream(service_account)
    try:
        echo_json(stream.set_status(False))
    finally:
        stream.close()


@app.command("verify")
def verify(service_account: Path = _KEY) -> None:
    """Ask Google to send a verification event to the receiver (stream:verify)."""
    state = secrets.token_urlsafe(12)
    stream = _stream(service_account)
    try:
        stream.verify(state)
    finally:
        stream.close()
    say(f"verification requested (state {state}); the keeper's audit log records it")
