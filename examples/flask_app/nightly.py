"""The nightly job: list each linked user's Drive appDataFolder with googleapiclient, the
refresh going through grantkeeper. ``python nightly.py app.sqlite3`` (cron, a systemd timer)."""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build

from grantkeeper import GrantRevoked, MissingScopes, SyncKeeper


def run(database: str, keeper: SyncKeeper, **build_options: Any) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with sqlite3.connect(database) as db:
        subs = [row[0] for row in db.execute("SELECT google_sub FROM users WHERE google_sub")]
    for sub in subs:
        try:
            credentials = keeper.credentials(sub)
            with build("drive", "v3", credentials=credentials, **build_options) as drive:
                files = drive.files().list(spaces="appDataFolder", fields="files(name)").execute()
            report[sub] = [f["name"] for f in files.get("files", [])]
        except (GrantRevoked, MissingScopes) as error:  # also RefreshError inside googleapiclient
            report[sub] = error.code  # ask the user to sign in again next time they open the app
        except RefreshError as error:
            report[sub] = f"retry later: {error}"
    return report


if __name__ == "__main__":
    with SyncKeeper() as keeper:
        print(run(sys.argv[1], keeper))
