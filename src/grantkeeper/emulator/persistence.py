"""The emulator's clients and users kept in a file, and made from a seed file at start.

An app's own tests restart the emulator, and their fixtures hold a ``client_secret.json`` and the
``sub`` of each test user. ``--state FILE`` keeps what those point at: every OAuth client (its id,
secret, redirect URIs) and every user (email, ``sub``, profile) is written to ``FILE`` when it is
made and read back at the next start. Codes, tokens and grants are not kept, as a restart of
Google's side would not matter to them in a real deployment either: a keeper's stored refresh
tokens die with the emulator that issued them, and its next refresh says ``invalid_grant``.

``--seed FILE`` creates clients and users at start (each only if it does not exist yet), so a
test suite can start from a known world: ``{"clients": [{"type": "web", "client_id": ...,
"client_secret": ..., "redirect_uris": [...]}, ...], "users": [{"email": ..., "sub": ...},
...]}``, each entry the body ``POST /emulator/clients`` or ``POST /emulator/users`` takes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grantkeeper.emulator.oauth.account_input import ClientIn, UserIn
from grantkeeper.emulator.oauth.models import Client, User

if TYPE_CHECKING:
    from grantkeeper.emulator.state import EmulatorState

FORMAT = 1


class StateFileError(ValueError):
    """A state or seed file that cannot be used; the message says which and why."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seed(_Entry):
    clients: list[ClientIn] = Field(default_factory=list)
    users: list[UserIn] = Field(default_factory=list)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StateFileError(f"Cannot read the {what} {path}: {error.strerror}.") from None
    except ValueError as error:
        raise StateFileError(f"The {what} {path} is not JSON: {error}.") from None


def _problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or "top level"
    return f"{where}: {problem['msg']}"


def load_seed(path: Path) -> Seed:
    """Read and check a seed file (raises :class:`StateFileError` naming the bad entry)."""
    try:
        return Seed.model_validate(_read_json(path, "seed file"))
    except ValidationError as error:
        raise StateFileError(f"The --seed file {path} is not valid: {_problem(error)}.") from None


def apply_seed(state: EmulatorState, seed: Seed) -> None:
    """Create the --seed file's clients and users that do not exist yet (by client id and email)."""
    from grantkeeper.emulator.oauth import accounts

    for client in seed.clients:
        if client.client_id is None or client.client_id not in state.clients:
            accounts.create_client(state, **client.model_dump())
    for user in seed.users:
        if state.user_by_email(user.email) is None:
            if user.sub is not None and user.sub in state.users:
                raise StateFileError(
                    f"The --seed file's user {user.email} has the sub of "
                    f"{state.users[user.sub].email}."
                )
            accounts.create_user(state, **user.model_dump())


def load_state(state: EmulatorState, path: Path) -> None:
    """Read the clients and users kept in ``path`` (nothing happens when it does not exist)."""
    if not path.exists():
        return
    data = _read_json(path, "state file")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(
            f"The state file {path} was not written by this emulator (format {FORMAT}); "
            "move it away or name another --state file."
        )
    try:
        clients = [Client(**entry) for entry in data.get("clients", [])]
        users = [User(**entry) for entry in data.get("users", [])]
    except TypeError as error:
        raise StateFileError(f"The state file {path} has an unknown field: {error}.") from None
    with state.lock:
        for client in clients:
            state.clients[client.client_id] = client
        for user in users:
            state.users[user.sub] = user
            state.users_by_email[user.email.lower()] = user.sub


def save_state(state: EmulatorState, path: Path) -> None:
    """Write every client and user to ``path`` atomically, readable by its owner only (it holds
    client secrets)."""
    with state.lock:
        data = {
            "format": FORMAT,
            "clients": [asdict(c) for c in state.clients.values()],
            "users": [asdict(u) for u in state.users.values()],
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".emulator-state-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
