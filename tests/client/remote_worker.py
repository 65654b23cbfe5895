"""A worker on another host: google-api-python-client with tokens from the keeper's HTTP API.

Run as a script by ``test_remote_worker.py``. It imports only ``grantkeeper.client`` (and
googleapiclient); the server's packages are made unimportable first, as on a host where only the
client is installed. It reports each step as a JSON line and waits for the test's go-ahead on
stdin between steps.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from typing import Any

#: What the server extras bring; none of it may be needed by the client.
SERVER_PACKAGES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "aiosqlite",
        "psycopg",
        "pydantic",
        "pydantic_settings",
        "joserfc",
        "prometheus_client",
        "typer",
        "jinja2",
        "standardwebhooks",
        "tenacity",
        "platformdirs",
    }
)


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.split(".")[0] in SERVER_PACKAGES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked)", name=fullname)
        return None


sys.meta_path.insert(0, NotInstalled())

from google.auth.exceptions import RefreshError  # noqa: E402
from googleapiclient.discovery import build  # noqa: E402

from grantkeeper.client import TokenClient  # noqa: E402
from grantkeeper.errors import GrantRevoked  # noqa: E402

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"


def report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def wait_for(word: str) -> None:
    line = sys.stdin.readline().strip()
    if line != word:
        raise SystemExit(f"expected {word!r} on stdin, got {line!r}")


def main() -> None:
    keeper_url, service_key, sub, discovery_url = sys.argv[1:5]
    with TokenClient(keeper_url, service_key) as keeper:
        credentials = keeper.credentials(sub, scopes=[DRIVE_APPDATA])
        drive = build(
            "drive",
            "v3",
            credentials=credentials,
            discoveryServiceUrl=discovery_url,
            static_discovery=False,
            cache_discovery=False,
        )
        first = credentials.token
        folder = drive.files().get(fileId="appfolder", fields="id").execute()
        report(step="first", folder=folder["id"])

        wait_for("expired")  # the test moved Google's clock past the token's expiry
        folder = drive.files().get(fileId="appfolder", fields="id").execute()
        report(step="after_expiry", folder=folder["id"], new_token=credentials.token != first)

        wait_for("removed")  # the user removed the app in their Google Account
        try:
            drive.files().get(fileId="appfolder", fields="id").execute()
        except GrantRevoked as error:
            report(
                also_refresh_error=isinstance(error, RefreshError),
                step="revoked",
                type=type(error).__name__,
                code=error.code,
                status=error.status,
                reason=error.reason,
                advice=error.advice,
                retryable=error.retryable,
            )
        else:
            report(step="revoked", type=None)
        loaded = sorted(
            name
            for name in sys.modules
            if name.startswith("grantkeeper")
            and not name.startswith("grantkeeper.client")
            and name
            not in (
                "grantkeeper",
                "grantkeeper.errors",
                "grantkeeper._version",
                "grantkeeper._lazy",
                "grantkeeper.refresh_errors",
                "grantkeeper.outbound_tls",  # the shared TLS context: the standard library only
            )
        )
        report(step="modules", grantkeeper_beyond_client=loaded)
        drive.close()


#: What ``import grantkeeper`` itself loads: its errors, version and lazy-export helper.
IMPORTED_BY_GRANTKEEPER = (
    "grantkeeper",
    "grantkeeper.errors",
    "grantkeeper._version",
    "grantkeeper._lazy",
)


if __name__ == "__main__":
    main()
