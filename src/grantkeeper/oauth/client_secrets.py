"""Google's ``client_secret_*.json``, read the way oauth2client and google_auth_oauthlib read it.

The file has exactly one top-level key, ``web`` or ``installed``, whose object holds
``client_id``, ``client_secret``, ``auth_uri``, ``token_uri`` and ``redirect_uris`` (oauth2client
``clientsecrets.py``). We require only what the backend uses: ``client_id``, ``client_secret`` and
``token_uri``; ``auth_uri``/``redirect_uris`` are kept when present. A value that still starts
with ``[[`` is an unfilled template placeholder, as oauth2client treats it.

Every problem raises :class:`~grantkeeper.errors.ConfigurationError` naming the file and the
field; the secret itself is never printed (nor shown by ``repr``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grantkeeper.errors import ConfigurationError

ClientType = Literal["web", "installed"]

_CLIENT_TYPES: tuple[ClientType, ...] = ("web", "installed")
_REQUIRED = ("client_id", "client_secret", "token_uri")
_PLACEHOLDER_PREFIX = "[["


@dataclass(frozen=True, slots=True)
class ClientSecrets:
    """The server (web) OAuth client: its id, its secret and the URIs Google put in the file."""

    client_type: ClientType
    client_id: str
    client_secret: str = field(repr=False)
    token_uri: str
    auth_uri: str | None = None
    revoke_uri: str | None = None
    redirect_uris: tuple[str, ...] = ()
    source: str = "<memory>"


def load_client_secrets(path: str | Path) -> ClientSecrets:
    """Read and validate a ``client_secret_*.json`` file.

    Raises:
        ConfigurationError: the file is missing or unreadable, is not JSON, has the wrong shape,
            or lacks (or has a placeholder for) a required field. The message names the file.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"Client secrets file {source} does not exist "
            "(set GRANTKEEPER_CLIENT_SECRETS_FILE to the file downloaded from Cloud Console)."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"Client secrets file {source} cannot be read: {type(error).__name__}."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        # Only the position: the JSON text may contain the secret.
        raise ConfigurationError(
            f"Client secrets file {source} is not valid JSON "
            f"(line {error.lineno}, column {error.colno})."
        ) from None
    return parse_client_secrets(data, source=source)


def parse_client_secrets(data: Any, *, source: str = "<memory>") -> ClientSecrets:
    """Validate the decoded JSON of a client secrets file (see :func:`load_client_secrets`)."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ConfigurationError(
            f"Client secrets file {source} has the wrong shape: expected a JSON object with a "
            'single property, "web" or "installed".'
        )
    ((client_type, info),) = data.items()
    if client_type not in _CLIENT_TYPES:
        raise ConfigurationError(
            f'Client secrets file {source}: unknown client type "{client_type}"; '
            'expected "web" or "installed".'
        )
    if not isinstance(info, dict):
        raise ConfigurationError(
            f'Client secrets file {source}: "{client_type}" must be a JSON object.'
        )
    for name in _REQUIRED:
        value = info.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f'Client secrets file {source}: missing property "{name}" in "{client_type}".'
            )
        if value.startswith(_PLACEHOLDER_PREFIX):
            raise ConfigurationError(
                f'Client secrets file {source}: property "{name}" is not configured '
                "(it still holds a [[placeholder]])."
            )
    redirect_uris = info.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
        raise ConfigurationError(
            f'Client secrets file {source}: "redirect_uris" in "{client_type}" must be a list '
            "of strings."
        )
    return ClientSecrets(
        client_type=client_type,
        client_id=info["client_id"].strip(),
        client_secret=info["client_secret"],
        token_uri=info["token_uri"].strip(),
        auth_uri=_optional_str(info, "auth_uri", source, client_type),
        revoke_uri=_optional_str(info, "revoke_uri", source, client_type),
        redirect_uris=tuple(redirect_uris),
        source=source,
    )


def _optional_str(info: dict[str, Any], name: str, source: str, client_type: str) -> str | None:
    value = info.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(
            f'Client secrets file {source}: "{name}" in "{client_type}" must be a string.'
        )
    return value
