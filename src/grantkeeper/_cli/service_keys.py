"""``grantkeeper service-keys``: the token API's keys, their names and limits, never a secret."""

from __future__ import annotations

import typer

from grantkeeper._cli.runner import echo_json, out, say, table
from grantkeeper.service_keys import ServiceKeyRing
from grantkeeper.settings import Settings


def service_keys(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """List GRANTKEEPER_SERVICE_API_KEYS: each key's name, fingerprint, operations and scopes."""
    keys = ServiceKeyRing(Settings().service_api_keys).describe()
    if as_json:
        echo_json(keys)
        return
    rows = [
        [
            key["name"],
            key["fingerprint"],
            " ".join(key["operations"]),
            "any" if key["scopes"] is None else " ".join(key["scopes"]),
        ]
        for key in keys
    ]
    out.print(table(["name", "fingerprint", "operations", "scopes"], rows, keep_whole=["name"]))
    if not keys:
        say("No service key: the token API refuses every caller.")
